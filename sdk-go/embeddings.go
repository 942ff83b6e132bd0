package engram

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/engram-memory-server/engram/sdk-go/gen/engramv1"
)

// Embeddings are the vectors Embed returns.
type Embeddings struct {
	// Vectors holds one L2-normalised vector per text, in order.
	Vectors [][]float32
	// Model is the embedding model that made them.
	Model string
	// Dimensions is the length of each vector.
	Dimensions int
}

// Embed turns texts into vectors with the server's embedding model (Embed). inputType says
// whether the texts are documents (EmbeddingInputTypeUnspecified means document) or queries.
func (c *Client) Embed(ctx context.Context, texts []string, inputType EmbeddingInputType) (*Embeddings, error) {
	res, err := unary(ctx, c, true, c.embedding.Embed, &engramv1.EmbedRequest{Texts: texts, InputType: inputType})
	if err != nil {
		return nil, err
	}
	out := &Embeddings{Model: res.GetModel(), Dimensions: int(res.GetDimensions())}
	for i, e := range res.GetEmbeddings() {
		v, err := DecodeVector(e.GetVector())
		if err != nil {
			return nil, &Error{Code: CodeInternal, Message: fmt.Sprintf("embedding %d: %v", i, err), FromServer: true, cause: err}
		}
		out.Vectors = append(out.Vectors, v)
	}
	return out, nil
}

// DecodeVector decodes a vector packed as little-endian float32 values, as Embedding.Vector
// holds it.
func DecodeVector(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("packed float32 vector of %d bytes: not a multiple of 4", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// EncodeVector packs v as little-endian float32 values, the encoding of Embedding.Vector.
func EncodeVector(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}
