package otlpwire

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// TestSchemaNamesFieldsAsTheGeneratedTypesDo checks every field the schema describes against the
// generated OTLP types: its proto name and the JSON name the schema derives from it (FromJSON
// reads both), and whether it is repeated.
func TestSchemaNamesFieldsAsTheGeneratedTypesDo(t *testing.T) {
	tests := map[*msgDesc]proto.Message{
		descRequest:       &coltracepb.ExportTraceServiceRequest{},
		descResourceSpans: &tracepb.ResourceSpans{},
		descResource:      &resourcepb.Resource{},
		descEntityRef:     &commonpb.EntityRef{},
		descScopeSpans:    &tracepb.ScopeSpans{},
		descScope:         &commonpb.InstrumentationScope{},
		descSpan:          &tracepb.Span{},
		descEvent:         &tracepb.Span_Event{},
		descLink:          &tracepb.Span_Link{},
		descStatus:        &tracepb.Status{},
		descKeyValue:      &commonpb.KeyValue{},
		descAnyValue:      &commonpb.AnyValue{},
		descArrayValue:    &commonpb.ArrayValue{},
		descKeyValueList:  &commonpb.KeyValueList{},
	}
	for d, m := range tests {
		md := m.ProtoReflect().Descriptor()
		described := 0
		for num := range d.fields {
			f := d.field(protoreflect.FieldNumber(num))
			if f == nil {
				continue
			}
			described++
			gf := md.Fields().ByNumber(protoreflect.FieldNumber(num))
			if gf == nil {
				t.Errorf("%s field %d (%s) is not in %s", d.name, num, f.name, md.FullName())
				continue
			}
			if string(gf.Name()) != f.name || gf.JSONName() != f.jsonName || gf.IsList() != f.repeated {
				t.Errorf("%s field %d: name %q, JSON name %q, repeated %v; %s says %q, %q, %v",
					d.name, num, f.name, f.jsonName, f.repeated, md.FullName(), gf.Name(), gf.JSONName(), gf.IsList())
			}
		}
		if described == 0 {
			t.Errorf("%s describes no fields", d.name)
		}
	}
}
