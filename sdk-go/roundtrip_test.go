package engram_test

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/engram-memory-server/engram/sdk-go/gen/engramv1"
)

// engramFiles are the generated files of the Engram v1 API.
var engramFiles = []protoreflect.FileDescriptor{
	engramv1.File_engram_v1_enums_proto,
	engramv1.File_engram_v1_messages_proto,
	engramv1.File_engram_v1_request_response_proto,
	engramv1.File_engram_v1_service_proto,
}

// TestUnitRoundTrip fills every field of every generated message (recursively, through
// protoreflect) and checks that the binary and the proto3 JSON encodings both decode back to
// an equal message.
func TestUnitRoundTrip(t *testing.T) {
	n := 0
	for _, fd := range engramFiles {
		msgs := fd.Messages()
		for i := range msgs.Len() {
			md := msgs.Get(i)
			n++
			t.Run(string(md.Name()), func(t *testing.T) {
				mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName())
				if err != nil {
					t.Fatal(err)
				}
				m := mt.New()
				populate(m, 0)
				for j := range md.Fields().Len() {
					f := md.Fields().Get(j)
					if f.ContainingOneof() == nil && !m.Has(f) {
						t.Errorf("field %s not populated", f.Name())
					}
				}
				msg := m.Interface()

				b, err := proto.Marshal(msg)
				if err != nil {
					t.Fatal(err)
				}
				back := mt.New().Interface()
				if err := proto.Unmarshal(b, back); err != nil {
					t.Fatal(err)
				}
				if !proto.Equal(msg, back) {
					t.Errorf("binary round trip:\n got %v\nwant %v", back, msg)
				}

				j, err := protojson.Marshal(msg)
				if err != nil {
					t.Fatal(err)
				}
				back = mt.New().Interface()
				if err := protojson.Unmarshal(j, back); err != nil {
					t.Fatalf("%v in %s", err, j)
				}
				if !proto.Equal(msg, back) {
					t.Errorf("JSON round trip:\n got %v\nwant %v", back, msg)
				}
				// Proto field names (snake_case), as the REST API writes them, decode too.
				j, err = protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
				if err != nil {
					t.Fatal(err)
				}
				back = mt.New().Interface()
				if err := protojson.Unmarshal(j, back); err != nil || !proto.Equal(msg, back) {
					t.Errorf("snake_case JSON round trip: %v", err)
				}
			})
		}
	}
	if n < 60 {
		t.Errorf("only %d messages found", n)
	}
}

// populate sets every field of m to a non-default value; messages nest to a few levels.
func populate(m protoreflect.Message, depth int) {
	md := m.Descriptor()
	switch md.FullName() {
	case "google.protobuf.Timestamp":
		m.Set(md.Fields().ByName("seconds"), protoreflect.ValueOfInt64(1_700_000_000+int64(depth)))
		m.Set(md.Fields().ByName("nanos"), protoreflect.ValueOfInt32(123_000_000))
		return
	case "google.protobuf.Duration":
		m.Set(md.Fields().ByName("seconds"), protoreflect.ValueOfInt64(90))
		m.Set(md.Fields().ByName("nanos"), protoreflect.ValueOfInt32(500_000_000))
		return
	case "google.protobuf.FieldMask":
		l := m.Mutable(md.Fields().ByName("paths")).List()
		l.Append(protoreflect.ValueOfString("content"))
		l.Append(protoreflect.ValueOfString("session_id"))
		return
	case "google.protobuf.Value":
		// One member of the oneof: a number at the leaves, a struct above them.
		if depth >= 3 {
			m.Set(md.Fields().ByName("number_value"), protoreflect.ValueOfFloat64(2.5))
		} else {
			populate(m.Mutable(md.Fields().ByName("struct_value")).Message(), depth+1)
		}
		return
	}
	for i := range md.Fields().Len() {
		f := md.Fields().Get(i)
		if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() && m.WhichOneof(o) != nil {
			continue
		}
		switch {
		case f.IsMap():
			mp := m.Mutable(f).Map()
			for k := range 2 {
				key := scalar(f.MapKey(), k).MapKey()
				if f.MapValue().Kind() == protoreflect.MessageKind {
					v := mp.NewValue()
					populate(v.Message(), depth+1)
					mp.Set(key, v)
				} else {
					mp.Set(key, scalar(f.MapValue(), k))
				}
			}
		case f.IsList():
			l := m.Mutable(f).List()
			for k := range 2 {
				if f.Kind() == protoreflect.MessageKind {
					v := l.NewElement()
					populate(v.Message(), depth+1)
					l.Append(v)
				} else {
					l.Append(scalar(f, k))
				}
			}
		case f.Kind() == protoreflect.MessageKind || f.Kind() == protoreflect.GroupKind:
			populate(m.Mutable(f).Message(), depth+1)
		default:
			m.Set(f, scalar(f, 1))
		}
	}
}

// scalar returns the k-th (0, 1, ...) distinct non-default value for a scalar field.
func scalar(f protoreflect.FieldDescriptor, k int) protoreflect.Value {
	switch f.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(true)
	case protoreflect.EnumKind:
		vals := f.Enum().Values()
		return protoreflect.ValueOfEnum(vals.Get(vals.Len() - 1 - k%(vals.Len()-1)).Number())
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(-7 - k))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(-(1 << 40) - int64(k))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(7 + k))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(1<<40 + uint64(k))
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(0.25 + float32(k))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(1.5 + float64(k))
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(fmt.Sprintf("%s-%d-é✓", f.Name(), k))
	case protoreflect.BytesKind:
		return protoreflect.ValueOfBytes([]byte{0, 1, 2, 0xfe, byte(k)})
	}
	panic(fmt.Sprintf("unhandled kind %v", f.Kind()))
}
