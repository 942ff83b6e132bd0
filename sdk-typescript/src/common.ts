// The public surface shared by the Node and browser entry points (everything but the transport).
export {
  EngramClientBase,
  DEFAULT_BASE_URL,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_RETRIES,
  DEFAULT_BACKOFF,
} from "./client.js";
export type {
  BackoffOptions,
  CallOptions,
  ConsolidateOptions,
  EmbedResult,
  EngramClientOptions,
  EngramServices,
  ImportOptions,
  TransportFactory,
  StoreMemoryInput,
  GetMemoryInput,
  UpdateMemoryInput,
  DeleteMemoryInput,
  ListMemoriesInput,
  RecallInput,
  ForgetMemoriesInput,
  GetMemoryHistoryInput,
  LinkMemoriesInput,
  UnlinkMemoriesInput,
  GetMemoryGraphInput,
  ExportMemoriesInput,
  ImportMemoryInput,
  ListAgentsInput,
  GetAgentInput,
  DeleteAgentInput,
  CreateApiKeyInput,
  ListApiKeysInput,
  RevokeApiKeyInput,
  EmbedInput,
} from "./client.js";
export { MemoryWatch } from "./watch.js";
export type { WatchOptions } from "./watch.js";
export { EngramError, codeName, toEngramError } from "./errors.js";
export { normalizeBaseUrl } from "./address.js";
export type { ErrorCode, ErrorDetail } from "./errors.js";
export { apiKeyInterceptor, headersInterceptor } from "./interceptors.js";
export { decodeVector, encodeVector } from "./vectors.js";

// Enums and message types of the API (generated; import them from here, not from ./gen).
export {
  MemoryType,
  RecallMode,
  ApiKeyRole,
  EmbeddingInputType,
  DuplicatePolicy,
  StoreOutcome,
  MemoryEventType,
} from "./gen/engram/v1/enums_pb.js";
export type {
  Memory,
  RecalledMemory,
  ScoreExplanation,
  TimeRange,
  MemoryFilter,
  MemoryLink,
  Agent,
  ApiKey,
  ServerLimits,
  ClusterNode,
  ClusterShard,
  ClusterShardOwner,
  ClusterEngine,
  Embedding,
  DuplicateGroup,
  MemoryEvent,
} from "./gen/engram/v1/messages_pb.js";
export type {
  StoreMemoryResponse,
  BatchStoreMemoriesResponse,
  DeleteMemoryResponse,
  ListMemoriesResponse,
  RecallResponse,
  ForgetMemoriesResponse,
  ConsolidateMemoriesResponse,
  WatchMemoriesResponse,
  UnlinkMemoriesResponse,
  GetMemoryGraphResponse,
  ImportMemoriesResponse,
  ListAgentsResponse,
  DeleteAgentResponse,
  HealthResponse,
  GetServerInfoResponse,
  GetStatsResponse,
  CreateApiKeyResponse,
  GetClusterStatusResponse,
  DrainClusterNodeResponse,
  EmbedResponse,
} from "./gen/engram/v1/request_response_pb.js";
export { MemoryService, AgentService, AdminService, EmbeddingService } from "./gen/engram/v1/service_pb.js";
// Timestamps travel as google.protobuf.Timestamp; these convert to and from Date.
export { timestampDate, timestampFromDate, timestampNow } from "@bufbuild/protobuf/wkt";
