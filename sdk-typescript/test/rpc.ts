export { BadRequestSchema, RetryInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
