package engram

import "github.com/engram-memory-server/engram/sdk-go/gen/engramv1"

// The messages of the Engram v1 API, re-exported from the generated package gen/engramv1.
// They are the same types (aliases), so values pass freely between the two.
type (
	Memory           = engramv1.Memory
	RecalledMemory   = engramv1.RecalledMemory
	ScoreExplanation = engramv1.ScoreExplanation
	MemoryFilter     = engramv1.MemoryFilter
	MemoryLink       = engramv1.MemoryLink
	Agent            = engramv1.Agent
	APIKey           = engramv1.ApiKey
	ServerLimits     = engramv1.ServerLimits
	ClusterNode      = engramv1.ClusterNode

	StoreMemoryResponse        = engramv1.StoreMemoryResponse
	BatchStoreMemoriesResponse = engramv1.BatchStoreMemoriesResponse
	ListMemoriesResponse       = engramv1.ListMemoriesResponse
	RecallResponse             = engramv1.RecallResponse
	ForgetMemoriesResponse     = engramv1.ForgetMemoriesResponse
	GetMemoryGraphResponse     = engramv1.GetMemoryGraphResponse
	ImportMemoriesResponse     = engramv1.ImportMemoriesResponse
	ListAgentsResponse         = engramv1.ListAgentsResponse
	HealthResponse             = engramv1.HealthResponse
	GetServerInfoResponse      = engramv1.GetServerInfoResponse
	GetStatsResponse           = engramv1.GetStatsResponse
	CreateAPIKeyResponse       = engramv1.CreateApiKeyResponse
	GetClusterStatusResponse   = engramv1.GetClusterStatusResponse
)

// MemoryType is the kind of a memory.
type MemoryType = engramv1.MemoryType

// The memory types. MemoryTypeUnspecified means the default, episodic.
const (
	MemoryTypeUnspecified = engramv1.MemoryType_MEMORY_TYPE_UNSPECIFIED
	MemoryTypeEpisodic    = engramv1.MemoryType_MEMORY_TYPE_EPISODIC
	MemoryTypeSemantic    = engramv1.MemoryType_MEMORY_TYPE_SEMANTIC
	MemoryTypeProcedural  = engramv1.MemoryType_MEMORY_TYPE_PROCEDURAL
	MemoryTypeWorking     = engramv1.MemoryType_MEMORY_TYPE_WORKING
)

// RecallMode is how recall finds candidates.
type RecallMode = engramv1.RecallMode

// The recall modes. RecallModeUnspecified means the default, hybrid.
const (
	RecallModeUnspecified = engramv1.RecallMode_RECALL_MODE_UNSPECIFIED
	RecallModeHybrid      = engramv1.RecallMode_RECALL_MODE_HYBRID
	RecallModeVector      = engramv1.RecallMode_RECALL_MODE_VECTOR
	RecallModeKeyword     = engramv1.RecallMode_RECALL_MODE_KEYWORD
)

// APIKeyRole is what an API key may do.
type APIKeyRole = engramv1.ApiKeyRole

// The API key roles. APIKeyRoleUnspecified is rejected by the server.
const (
	APIKeyRoleUnspecified = engramv1.ApiKeyRole_API_KEY_ROLE_UNSPECIFIED
	APIKeyRoleAdmin       = engramv1.ApiKeyRole_API_KEY_ROLE_ADMIN
	APIKeyRoleReadWrite   = engramv1.ApiKeyRole_API_KEY_ROLE_READ_WRITE
	APIKeyRoleReadOnly    = engramv1.ApiKeyRole_API_KEY_ROLE_READ_ONLY
)

// EmbeddingInputType says what text given to [Client.Embed] will be used as.
type EmbeddingInputType = engramv1.EmbeddingInputType

// The embedding input types. EmbeddingInputTypeUnspecified means the default, document.
const (
	EmbeddingInputTypeUnspecified = engramv1.EmbeddingInputType_EMBEDDING_INPUT_TYPE_UNSPECIFIED
	EmbeddingInputTypeDocument    = engramv1.EmbeddingInputType_EMBEDDING_INPUT_TYPE_DOCUMENT
	EmbeddingInputTypeQuery       = engramv1.EmbeddingInputType_EMBEDDING_INPUT_TYPE_QUERY
)

// Ptr returns a pointer to v: a helper for the optional fields of option structs, such as
// StoreOptions.Importance (engram.Ptr[float32](0.8)) and MemoryUpdate.Content.
func Ptr[T any](v T) *T { return &v }
