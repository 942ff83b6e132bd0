package engram

import (
	"context"
	"time"

	"github.com/engram-memory-server/engram/sdk-go/gen/engramv1"
)

// Health reports whether the server can serve (Health): Status "healthy", "starting" or
// "stopping", and the server version. It needs no API key.
func (c *Client) Health(ctx context.Context) (*HealthResponse, error) {
	return unary(ctx, c, true, c.admin.Health, &engramv1.HealthRequest{})
}

// ServerInfo returns the server's version, embedding model and limits (GetServerInfo).
func (c *Client) ServerInfo(ctx context.Context) (*GetServerInfoResponse, error) {
	return unary(ctx, c, true, c.admin.GetServerInfo, &engramv1.GetServerInfoRequest{})
}

// Stats returns counts and sizes across the whole server (GetStats). It needs an admin key.
func (c *Client) Stats(ctx context.Context) (*GetStatsResponse, error) {
	return unary(ctx, c, true, c.admin.GetStats, &engramv1.GetStatsRequest{})
}

// APIKeyOptions holds the optional parts of a new API key. nil makes a key for every agent
// that never expires.
type APIKeyOptions struct {
	// AgentIDs, when not empty, restricts the key to these agents.
	AgentIDs []string
	// AgentIDPrefix, when not empty, restricts the key to agents whose id starts with it.
	AgentIDPrefix string
	// TTL makes the key expire after this long (whole seconds); 0 means never.
	TTL time.Duration
}

// CreateAPIKey creates a scoped API key (CreateApiKey). The secret is in the response's Key
// field, and only there: store it now. Needs an admin key; never retried.
func (c *Client) CreateAPIKey(ctx context.Context, name string, role APIKeyRole, opts *APIKeyOptions) (*CreateAPIKeyResponse, error) {
	if opts == nil {
		opts = &APIKeyOptions{}
	}
	req := &engramv1.CreateApiKeyRequest{
		Name: name, Role: role, AgentIds: opts.AgentIDs, AgentIdPrefix: opts.AgentIDPrefix,
		TtlSeconds: int64(opts.TTL / time.Second),
	}
	return unary(ctx, c, false, c.admin.CreateApiKey, req)
}

// ListAPIKeys lists the API keys, newest first, never their secrets (ListApiKeys);
// includeRevoked adds revoked and expired keys. Needs an admin key.
func (c *Client) ListAPIKeys(ctx context.Context, includeRevoked bool) ([]*APIKey, error) {
	res, err := unary(ctx, c, true, c.admin.ListApiKeys, &engramv1.ListApiKeysRequest{IncludeRevoked: includeRevoked})
	return res.GetApiKeys(), err
}

// RevokeAPIKey revokes the API key with the id (RevokeApiKey); it stops working at once.
// It returns the key as revoked. Needs an admin key.
func (c *Client) RevokeAPIKey(ctx context.Context, id string) (*APIKey, error) {
	res, err := unary(ctx, c, true, c.admin.RevokeApiKey, &engramv1.RevokeApiKeyRequest{Id: id})
	return res.GetApiKey(), err
}

// ClusterStatus describes the cluster (GetClusterStatus); a single server answers one
// healthy node and replication factor 1.
func (c *Client) ClusterStatus(ctx context.Context) (*GetClusterStatusResponse, error) {
	return unary(ctx, c, true, c.admin.GetClusterStatus, &engramv1.GetClusterStatusRequest{})
}

// DrainClusterNode drains a cluster node, named as ClusterStatus names it (DrainClusterNode):
// each shard it owns moves to another node, whose new owner serves before this one stops, after
// which the node owns nothing and can be stopped without a failed call. It returns the node as
// the drain starts. Needs an admin key; a single server answers FAILED_PRECONDITION.
func (c *Client) DrainClusterNode(ctx context.Context, nodeID string) (*DrainClusterNodeResponse, error) {
	return unary(ctx, c, true, c.admin.DrainClusterNode, &engramv1.DrainClusterNodeRequest{NodeId: nodeID})
}
