package engram

// Every error the client returns is an *Error (wrapped or not):
//
//	*Error
//	  Code        the gRPC code; Code.String() is the name shared by every Engram SDK ("NOT_FOUND")
//	  Message     the server's message (naming the offending field), or the client's
//	  Details     google.rpc error details (BadRequest, RetryInfo, ...) as proto messages
//	  RetryAfter  the delay the server asked for (google.rpc.RetryInfo), 0 when none
//	  FromServer  false when the client made the error up: deadline, cancellation, no connection
//
// Read the code with CodeOf(err) or the Is* helpers; errors.As(err, &e) gives the *Error.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Code is a gRPC status code. Its String method gives the code's canonical name, the string
// every Engram SDK and the REST API use: "OK", "NOT_FOUND", "INVALID_ARGUMENT", ...
type Code uint32

// The Code* constants and their names (codeNames) are generated from google/rpc/code.proto:
// codes_gen.go.

// String returns the canonical name of the code, e.g. "NOT_FOUND", or "CODE(n)" for an
// unknown number.
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("CODE(%d)", uint32(c))
}

// ParseCode returns the code with the canonical name s ("NOT_FOUND"), and false when s names
// no code.
func ParseCode(s string) (Code, bool) {
	for i, name := range codeNames {
		if name == s {
			return Code(i), true
		}
	}
	return CodeUnknown, false
}

// GRPCCode returns the code as a google.golang.org/grpc/codes.Code.
func (c Code) GRPCCode() codes.Code { return codes.Code(c) }

// Error is the error every method of the client returns: a status code, a message and the
// google.rpc details the server sent.
type Error struct {
	// Code is the gRPC status code.
	Code Code
	// Message is the human-readable message; the server's names the offending field.
	Message string
	// Details are the google.rpc error details the server attached (for example
	// *errdetails.BadRequest, *errdetails.RetryInfo), decoded. Details of types this program
	// does not link are left out.
	Details []proto.Message
	// RetryAfter is how long the server asked the client to wait before retrying
	// (google.rpc.RetryInfo); 0 when it did not say.
	RetryAfter time.Duration
	// FromServer is true when the server sent the error, false when the client made it up
	// (deadline passed, context cancelled, connection failure, invalid options).
	FromServer bool

	cause error
}

// NewError returns a client-side *Error (FromServer false) with the code and message.
func NewError(code Code, message string) *Error {
	return &Error{Code: code, Message: message}
}

// Error implements error: "engram: NOT_FOUND: memory m-1 not found".
func (e *Error) Error() string {
	if e.Message == "" {
		return "engram: " + e.Code.String()
	}
	return "engram: " + e.Code.String() + ": " + e.Message
}

// Unwrap returns the underlying error: the gRPC status error, or context.Canceled /
// context.DeadlineExceeded when the context ended the call.
func (e *Error) Unwrap() error { return e.cause }

// GRPCStatus returns the error as a gRPC status, so that status.FromError and status.Code
// of google.golang.org/grpc/status work on it.
func (e *Error) GRPCStatus() *status.Status {
	return status.New(codes.Code(e.Code), e.Message)
}

// CodeOf returns the code of err: CodeOK for nil, the Code of an *Error in err's chain,
// CodeCanceled or CodeDeadlineExceeded for context errors, the code of a gRPC status error,
// and CodeUnknown for anything else.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	switch {
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return CodeDeadlineExceeded
	}
	if s, ok := status.FromError(err); ok {
		return Code(s.Code())
	}
	return CodeUnknown
}

// IsNotFound reports whether err has the code NOT_FOUND.
func IsNotFound(err error) bool { return CodeOf(err) == CodeNotFound }

// IsInvalidArgument reports whether err has the code INVALID_ARGUMENT.
func IsInvalidArgument(err error) bool { return CodeOf(err) == CodeInvalidArgument }

// IsAlreadyExists reports whether err has the code ALREADY_EXISTS.
func IsAlreadyExists(err error) bool { return CodeOf(err) == CodeAlreadyExists }

// IsUnauthenticated reports whether err has the code UNAUTHENTICATED (missing or bad API key).
func IsUnauthenticated(err error) bool { return CodeOf(err) == CodeUnauthenticated }

// IsPermissionDenied reports whether err has the code PERMISSION_DENIED (the key's role or
// agent scope does not allow the call).
func IsPermissionDenied(err error) bool { return CodeOf(err) == CodePermissionDenied }

// IsUnavailable reports whether err has the code UNAVAILABLE.
func IsUnavailable(err error) bool { return CodeOf(err) == CodeUnavailable }

// IsOutOfRange reports whether err has the code OUT_OF_RANGE: a watch cursor older than the
// changes the server retains ([StartAfter]); resynchronise with [Client.Export], then watch
// from now.
func IsOutOfRange(err error) bool { return CodeOf(err) == CodeOutOfRange }

// IsResourceExhausted reports whether err has the code RESOURCE_EXHAUSTED (a limit or a
// rate was exceeded; see Error.RetryAfter).
func IsResourceExhausted(err error) bool { return CodeOf(err) == CodeResourceExhausted }

// toError converts an error of the gRPC layer into an *Error. ctx is the call's context:
// when it ended, the error is the client's. fromServer says whether the server answered
// (sent headers or trailers).
func toError(ctx context.Context, err error, fromServer bool) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	cerr := ctx.Err()
	if d, ok := ctx.Deadline(); ok && cerr == nil && status.Code(err) == codes.DeadlineExceeded && !time.Now().Before(d) {
		cerr = context.DeadlineExceeded // the gRPC layer saw the deadline before the context did
	}
	if cerr != nil {
		code := CodeCanceled
		if errors.Is(cerr, context.DeadlineExceeded) {
			code = CodeDeadlineExceeded
		}
		return &Error{Code: code, Message: err.Error(), cause: cerr}
	}
	s, ok := status.FromError(err)
	if !ok {
		return &Error{Code: CodeOf(err), Message: err.Error(), cause: err}
	}
	out := &Error{Code: Code(s.Code()), Message: s.Message(), FromServer: fromServer, cause: err}
	for _, d := range s.Details() {
		m, ok := d.(proto.Message)
		if !ok {
			continue // a detail whose type is not linked into this program
		}
		out.Details = append(out.Details, m)
		if ri, ok := m.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			out.RetryAfter = ri.GetRetryDelay().AsDuration()
		}
	}
	return out
}
