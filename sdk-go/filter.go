package engram

import (
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/engram-memory-server/engram/sdk-go/gen/engramv1"
)

// Filter selects memories, for Recall, List, Memories, Forget and Export. Conditions combine
// with AND; the zero Filter matches everything (Forget refuses it).
type Filter struct {
	// MemoryTypes matches any of these memory types.
	MemoryTypes []MemoryType
	// TagsAny matches memories that carry at least one of these tags.
	TagsAny []string
	// TagsAll matches memories that carry all of these tags.
	TagsAll []string
	// SessionID matches memories of this session.
	SessionID string
	// EventTime matches memories whose event time falls in this range.
	EventTime TimeRange
	// CreatedTime matches memories whose creation time falls in this range.
	CreatedTime TimeRange
	// MinImportance matches memories whose importance is at least this; nil does not filter.
	MinImportance *float32
	// MetadataEquals matches memories whose metadata has each of these top-level keys with an
	// equal value. Values are JSON-like: nil, bool, numbers, string, []any, map[string]any.
	MetadataEquals map[string]any
	// IDs matches only these memory ids.
	IDs []string
	// Keys matches only memories with these upsert keys (StoreOptions.Key, Memory.Key).
	Keys []string
}

// TimeRange is the half-open interval [Start, End). A zero bound is open.
type TimeRange struct {
	Start, End time.Time
}

func (r TimeRange) proto() *engramv1.TimeRange {
	if r.Start.IsZero() && r.End.IsZero() {
		return nil
	}
	return &engramv1.TimeRange{StartTime: timestamp(r.Start), EndTime: timestamp(r.End)}
}

// proto converts the filter; nil for a nil filter.
func (f *Filter) proto() (*engramv1.MemoryFilter, error) {
	if f == nil {
		return nil, nil
	}
	md, err := toStruct("filter.metadata_equals", f.MetadataEquals)
	if err != nil {
		return nil, err
	}
	return &engramv1.MemoryFilter{
		MemoryTypes:    f.MemoryTypes,
		TagsAny:        f.TagsAny,
		TagsAll:        f.TagsAll,
		SessionId:      f.SessionID,
		EventTime:      f.EventTime.proto(),
		CreatedTime:    f.CreatedTime.proto(),
		MinImportance:  f.MinImportance,
		MetadataEquals: md,
		Ids:            f.IDs,
		Keys:           f.Keys,
	}, nil
}

// timestamp converts t; nil for the zero time.
func timestamp(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// toStruct converts JSON-like metadata into a google.protobuf.Struct; nil for a nil map.
// field names the argument in the error.
func toStruct(field string, m map[string]any) (*structpb.Struct, error) {
	if m == nil {
		return nil, nil
	}
	s, err := structpb.NewStruct(m)
	if err != nil {
		return nil, &Error{Code: CodeInvalidArgument, Message: field + ": " + err.Error(), cause: err}
	}
	return s, nil
}
