package engram

import (
	"context"
	"iter"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// pages iterates over the items of page after page: fetch returns one page and the token of
// the next ("" on the last). The iteration stops after the first error, which it yields with
// a zero item.
func pages[T any](ctx context.Context, token string, fetch func(ctx context.Context, token string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for {
			items, next, err := fetch(ctx, token)
			if err != nil {
				var zero T
				yield(zero, err)
				return
			}
			for _, item := range items {
				if !yield(item, nil) {
					return
				}
			}
			if next == "" || next == token {
				return
			}
			token = next
		}
	}
}

// errSeq is a sequence that yields err once.
func errSeq[T any](err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		yield(zero, err)
	}
}

// callMeta captures the header and trailer metadata of a streaming call, to tell whether the
// server answered.
type callMeta struct {
	header, trailer metadata.MD
}

func (m *callMeta) callOptions() []grpc.CallOption {
	return []grpc.CallOption{grpc.Header(&m.header), grpc.Trailer(&m.trailer)}
}

func (m *callMeta) received() bool { return len(m.header) > 0 || len(m.trailer) > 0 }
