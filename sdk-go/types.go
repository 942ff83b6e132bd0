package engram

import "github.com/engram-memory-server/engram/sdk-go/gen/engramv1"

// The messages of the Engram v1 API, re-exported from the generated package gen/engramv1.
// They are the same types (aliases), so values pass freely between the two.
type (
	Memory            = engramv1.Memory
	RecalledMemory    = engramv1.RecalledMemory
	ScoreExplanation  = engramv1.ScoreExplanation
	MemoryFilter      = engramv1.MemoryFilter
	MemoryLink        = engramv1.MemoryLink
	Agent             = engramv1.Agent
	APIKey            = engramv1.ApiKey
	ServerLimits      = engramv1.ServerLimits
	ClusterNode       = engramv1.ClusterNode
	ClusterShard      = engramv1.ClusterShard
	ClusterShardOwner = engramv1.ClusterShardOwner
	ClusterEngine     = engramv1.ClusterEngine

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
	DrainClusterNodeResponse   = engramv1.DrainClusterNodeResponse

	// DuplicateGroup is a group of near-duplicate memories found by [Client.Consolidate].
	DuplicateGroup = engramv1.DuplicateGroup
	// ConsolidateMemoriesResponse is the result of [Client.Consolidate].
	ConsolidateMemoriesResponse = engramv1.ConsolidateMemoriesResponse
	// MemoryEvent is one change to a memory, as [Client.Watch] yields it.
	MemoryEvent = engramv1.MemoryEvent
	// WatchMemoriesResponse is one response of the change stream, as [Client.WatchResponses]
	// yields it: events, or a heartbeat (no events) carrying the current cursor.
	WatchMemoriesResponse = engramv1.WatchMemoriesResponse
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

// DuplicatePolicy is what a store does when the agent already holds the same memory
// (StoreOptions.DuplicatePolicy).
type DuplicatePolicy = engramv1.DuplicatePolicy

// The duplicate policies. DuplicatePolicyUnspecified means the server's default (its
// duplicate_policy setting, exact unless configured otherwise).
const (
	DuplicatePolicyUnspecified = engramv1.DuplicatePolicy_DUPLICATE_POLICY_UNSPECIFIED
	// DuplicatePolicyOff always stores a new memory.
	DuplicatePolicyOff = engramv1.DuplicatePolicy_DUPLICATE_POLICY_OFF
	// DuplicatePolicyExact merges a memory whose content is the same text (ignoring case,
	// Unicode width forms, runs of whitespace and trailing punctuation) into the existing one.
	DuplicatePolicyExact = engramv1.DuplicatePolicy_DUPLICATE_POLICY_EXACT
	// DuplicatePolicyNear also merges a memory whose embedding is within the duplicate threshold
	// (cosine) of an existing one: the newer text wins, the older stays in the history.
	DuplicatePolicyNear = engramv1.DuplicatePolicy_DUPLICATE_POLICY_NEAR
)

// StoreOutcome is what a store did: StoreMemoryResponse.Outcome, and
// BatchStoreMemoriesResponse.Outcomes (one per item).
type StoreOutcome = engramv1.StoreOutcome

// The store outcomes. The server never returns StoreOutcomeUnspecified.
const (
	StoreOutcomeUnspecified = engramv1.StoreOutcome_STORE_OUTCOME_UNSPECIFIED
	// StoreOutcomeCreated: a new memory was stored.
	StoreOutcomeCreated = engramv1.StoreOutcome_STORE_OUTCOME_CREATED
	// StoreOutcomeUnchanged: the client-chosen id already held the same content; nothing
	// changed (a safe retry).
	StoreOutcomeUnchanged = engramv1.StoreOutcome_STORE_OUTCOME_UNCHANGED
	// StoreOutcomeMerged: a duplicate of an existing memory (see DuplicatePolicy), which was
	// updated instead (the new text, the higher importance, the union of tags, metadata merged,
	// a new version).
	StoreOutcomeMerged = engramv1.StoreOutcome_STORE_OUTCOME_MERGED
	// StoreOutcomeReplaced: the agent already had a memory with this key; it was replaced (a
	// new version of the same id).
	StoreOutcomeReplaced = engramv1.StoreOutcome_STORE_OUTCOME_REPLACED
)

// MemoryEventType is what happened to a memory, in the change stream ([Client.Watch]).
type MemoryEventType = engramv1.MemoryEventType

// The memory event types. The server never sends MemoryEventTypeUnspecified.
const (
	MemoryEventTypeUnspecified = engramv1.MemoryEventType_MEMORY_EVENT_TYPE_UNSPECIFIED
	// MemoryEventTypeCreated: stored (or imported). MemoryEvent.Memory holds it.
	MemoryEventTypeCreated = engramv1.MemoryEventType_MEMORY_EVENT_TYPE_CREATED
	// MemoryEventTypeUpdated: a new version (an update, a merged duplicate, an upsert by key, a
	// consolidation). MemoryEvent.Memory holds it.
	MemoryEventTypeUpdated = engramv1.MemoryEventType_MEMORY_EVENT_TYPE_UPDATED
	// MemoryEventTypeDeleted: deleted (by id, by a forget, by a consolidation merging it, or
	// with its agent).
	MemoryEventTypeDeleted = engramv1.MemoryEventType_MEMORY_EVENT_TYPE_DELETED
	// MemoryEventTypeExpired: removed because its expiry time passed.
	MemoryEventTypeExpired = engramv1.MemoryEventType_MEMORY_EVENT_TYPE_EXPIRED
)

// Ptr returns a pointer to v: a helper for the optional fields of option structs, such as
// StoreOptions.Importance (engram.Ptr[float32](0.8)) and MemoryUpdate.Content.
func Ptr[T any](v T) *T { return &v }
