/** Decodes packed little-endian float32 values (`Embedding.vector`) into a Float32Array. */
export function decodeVector(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) {
    throw new RangeError(`a packed float32 vector needs a multiple of 4 bytes, got ${bytes.byteLength}`);
  }
  const n = bytes.byteLength / 4;
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < n; i++) {
    out[i] = view.getFloat32(i * 4, true);
  }
  return out;
}

/** Encodes a vector as packed little-endian float32 bytes, the wire form of `Embedding.vector`. */
export function encodeVector(vector: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(vector.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < vector.length; i++) {
    view.setFloat32(i * 4, vector[i] as number, true);
  }
  return out;
}
