// Generated schemas the tests need directly (users import types from "engram-memory-client").
export { MemoryEventSchema, MemorySchema, RecalledMemorySchema } from "../src/gen/engram/v1/messages_pb.js";
