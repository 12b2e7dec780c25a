package otlpwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// MaxValueDepth is how deeply AnyValues may nest: an attribute's value is at depth 1, a value
// inside its array or kvlist at depth 2, and so on. protobuf itself allows 10,000 levels of
// messages; the encoders recurse per level, so an unbounded depth would let one request cost
// unbounded stack and time. No instrumentation library produces more than a handful of levels.
const MaxValueDepth = 32

// The kinds of problems that Validate reports. An *Error wraps exactly one of them, so callers can
// tell them apart with errors.Is: all of them are the client's fault, and sending the same bytes
// again cannot succeed (the receivers' one error mapping says what a client is answered).
var (
	// ErrMalformed is a violation of the protobuf wire format: a truncated or over-long varint, a
	// length that runs past the end of its message, an invalid wire type or field number, an
	// unbalanced group. proto.Unmarshal rejects the same inputs.
	ErrMalformed = errors.New("malformed protobuf")
	// ErrInvalidUTF8 is a string field that is not valid UTF-8, which proto3 forbids
	// (proto.Unmarshal rejects it too).
	ErrInvalidUTF8 = errors.New("string is not valid UTF-8")
	// ErrInvalidID is a trace or span id of the wrong length. OTLP requires 16-byte trace ids and
	// 8-byte span ids (or empty ones); proto.Unmarshal does not check lengths, but every consumer
	// of the ids does (W3C traceparent, the collector's pdata).
	ErrInvalidID = errors.New("invalid id length")
	// ErrTooDeep is an AnyValue nested deeper than MaxValueDepth.
	ErrTooDeep = errors.New("value nested too deeply")
)

// Error is a rejected input: what is wrong (Err, one of the Err* kinds), where (Path, in proto
// field names with indexes of repeated fields, and Offset, the byte offset in the input) and a
// detail that names the values involved. It says where because a client whose exporter produces
// such bytes needs to find the offending span among thousands.
type Error struct {
	// Err is the kind of problem: ErrMalformed, ErrInvalidUTF8, ErrInvalidID or ErrTooDeep.
	Err error
	// Path locates the field, as "resource_spans[0].scope_spans[1].spans[7].trace_id".
	Path string
	// Offset is the position in the input where the offending field or value starts.
	Offset int
	// Detail describes the problem in the terms of the input.
	Detail string

	rev []string // path elements, innermost first, while the error travels up
}

// Error formats the problem as "otlpwire: <kind> at <path> (offset N): <detail>".
func (e *Error) Error() string {
	path := e.Path
	if path == "" {
		path = "top level"
	}
	return fmt.Sprintf("otlpwire: %v at %s (offset %d): %s", e.Err, path, e.Offset, e.Detail)
}

// Unwrap returns the kind of problem, for errors.Is.
func (e *Error) Unwrap() error { return e.Err }

// Validate checks that b is a well-formed ExportTraceServiceRequest (or TracesData, which has the
// same layout) that the readers of this package and the encoders can use without further checks,
// and counts its spans. It accepts exactly what proto.Unmarshal into the generated Go types accepts,
// except that it also rejects ids of the wrong length (ErrInvalidID) and values nested deeper than
// MaxValueDepth (ErrTooDeep). Unknown fields, and known fields that arrive with another wire type
// (which protobuf treats as unknown), are skipped. It does not allocate unless it fails.
func Validate(b []byte) (spans int, err error) {
	v := validator{}
	if e := v.message(descRequest, b, 0); e != nil {
		return 0, finish(e)
	}
	return v.spans, nil
}

// Visitor receives the spans of a request from a Walker.
type Visitor interface {
	// VisitSpan is called with each span once it has been validated, with its ResourceSpans and
	// ScopeSpans (views that live until VisitSpan returns) and the number of that ScopeSpans in
	// the request (0, 1, ...), which tells when a new one begins.
	VisitSpan(scope int, rs *ResourceSpans, ss *ScopeSpans, sp *Span)
}

// Walker is Validate that, in the same pass, hands each span to a Visitor as soon as the span
// has been validated, so that a request is encoded while it is validated rather than walked
// twice. A span is visited only when everything before it in the request is valid, but the
// request may still be invalid after it: what the visitor did counts only once Walk returns a
// nil error, and a caller that must not act on part of an invalid request undoes it otherwise.
//
// The Walker holds the views it hands out, so a reused Walker walks without allocating. Its zero
// value is ready; it walks one request at a time.
type Walker struct {
	rs    ResourceSpans
	ss    ScopeSpans
	sp    Span
	scope int
	visit Visitor
	watch []string
}

// Watch makes the Walker note, while it validates each span's attributes, whether one of them
// has one of keys (Span.Watched): a stream key template asks it of every span, and the walk has
// each key in hand already. The keys are kept until the next Watch.
func (w *Walker) Watch(keys []string) { w.watch = keys }

// see notes a key of the span's attributes against the watched keys.
func (w *Walker) see(key []byte) {
	if w.sp.watch == watchSeen {
		return
	}
	for _, k := range w.watch {
		if string(key) == k {
			w.sp.watch = watchSeen
			return
		}
	}
}

// Walk validates b as Validate does, returning the same count or error, and hands its spans to
// visit on the way.
func (w *Walker) Walk(b []byte, visit Visitor) (spans int, err error) {
	w.scope, w.visit = -1, visit
	defer func() { *w = Walker{watch: w.watch} }() // no views of b kept past the call
	v := validator{w: w}
	if e := v.message(descRequest, b, 0); e != nil {
		return 0, finish(e)
	}
	return v.spans, nil
}

// validator walks a message against its description.
type validator struct {
	spans int
	depth int     // AnyValue nesting
	w     *Walker // Walk's, when walking for a visitor
}

// enter is called with each message of type d before it is validated: it gives the Walker's
// visitor its views.
func (v *validator) enter(d *msgDesc, b []byte) {
	switch d {
	case descResourceSpans:
		v.w.rs = parseResourceSpans(b)
	case descScopeSpans:
		v.w.scope++
		v.w.ss = parseScopeSpans(b)
	case descSpan:
		v.w.sp = Span{raw: b} // filled as its fields are validated
		if len(v.w.watch) > 0 {
			v.w.sp.watch = watchNone
		}
	}
}

func fail(kind error, off int, format string, args ...any) *Error {
	return &Error{Err: kind, Offset: off, Detail: fmt.Sprintf(format, args...)}
}

// message validates the message body b of type d that starts at offset off of the input.
func (v *validator) message(d *msgDesc, b []byte, off int) *Error {
	if d.isValue {
		if v.depth++; v.depth > MaxValueDepth {
			return fail(ErrTooDeep, off, "more than %d levels of array or kvlist values", MaxValueDepth)
		}
		err := v.fields(d, b, off)
		v.depth--
		return err
	}
	return v.fields(d, b, off)
}

// fields validates the fields of message body b. It is the hot loop of Validate: one-byte tags
// and lengths (almost all of them) are decoded inline; the rest, and the errors, are not.
func (v *validator) fields(d *msgDesc, b []byte, off int) *Error {
	pos := 0
	for pos < len(b) {
		if n := v.plainAttribute(d, b[pos:]); n > 0 {
			pos += n
			continue
		}
		fieldOff := off + pos
		var num protowire.Number
		var typ protowire.Type
		if c := b[pos]; c < 0x80 && c >= 8 {
			num, typ = protowire.Number(c>>3), protowire.Type(c&7)
			pos++
		} else {
			var n int
			var err *Error
			if num, typ, n, err = longTag(d, b[pos:], fieldOff); err != nil {
				return err
			}
			pos += n
		}
		f := d.field(num)
		if f == nil || f.kind.wireType() != typ {
			m, err := skipUnknown(d, num, typ, b[pos:], fieldOff)
			if err != nil {
				return err
			}
			pos += m
			continue
		}
		val := field{num: num, typ: typ}
		var err *Error
		var m int
		if typ == protowire.BytesType {
			val.b, m, err = v.bytesField(d, f, b[pos:], off+pos, fieldOff)
		} else {
			val.u, m, err = scalar(typ, b[pos:], fieldOff)
		}
		if err != nil {
			return withPath(err, pathElem(f, num, b[:fieldOff-off]))
		}
		if d == descSpan && v.w != nil {
			v.w.sp.set(&val, b[fieldOff-off:]) // the span's view, filled as it is validated
			if num == fieldSpanAttributes && len(v.w.watch) > 0 {
				k, _ := splitKeyValue(val.b)
				v.w.see(k)
			}
		}
		pos += m
	}
	return nil
}

// bytesField validates the value of length-delimited field f of message d, at the start of b
// (offset off of the input; its tag is at fieldOff), and returns it and its size with its length.
func (v *validator) bytesField(d *msgDesc, f *fieldDesc, b []byte, off, fieldOff int) ([]byte, int, *Error) {
	var l uint64
	m := 1
	if len(b) > 0 && b[0] < 0x80 {
		l = uint64(b[0])
	} else if l, m = protowire.ConsumeVarint(b); m < 0 {
		return nil, 0, fail(ErrMalformed, fieldOff, "truncated or over-long length")
	}
	if l > uint64(len(b)-m) {
		return nil, 0, fail(ErrMalformed, fieldOff, "length %d runs past the end of %s (%d bytes left)", l, d.name, len(b)-m)
	}
	val := b[m : m+int(l) : m+int(l)]
	if v.w != nil && f.msg != nil {
		v.enter(f.msg, val)
	}
	if err := v.value(f, val, off+m); err != nil {
		return nil, 0, err
	}
	if f.msg == descSpan {
		v.spans++
		if v.w != nil {
			v.w.visit.VisitSpan(v.w.scope, &v.w.rs, &v.w.ss, &v.w.sp)
		}
	}
	return val, m + int(l), nil
}

// longTag reads a tag of more than one byte (or the invalid field number 0) at the start of b,
// which is at offset off of the input.
func longTag(d *msgDesc, b []byte, off int) (protowire.Number, protowire.Type, int, *Error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, 0, fail(ErrMalformed, off, "bad field tag in %s: %v", d.name, wireError(n))
	}
	if num > protowire.MaxValidNumber {
		return 0, 0, 0, fail(ErrMalformed, off, "field number %d of %s is out of range", num, d.name)
	}
	return num, typ, n, nil
}

// skipUnknown returns the size of the value at the start of b of a field that d does not know
// with this wire type (protobuf skips those).
func skipUnknown(d *msgDesc, num protowire.Number, typ protowire.Type, b []byte, off int) (int, *Error) {
	if typ == protowire.EndGroupType {
		return 0, fail(ErrMalformed, off, "end-group tag for field %d of %s without a start-group tag", num, d.name)
	}
	m := protowire.ConsumeFieldValue(num, typ, b)
	if m < 0 {
		return 0, fail(ErrMalformed, off, "field %d of %s, wire type %d: %v", num, d.name, typ, wireError(m))
	}
	return m, nil
}

// scalar returns the varint, fixed32 or fixed64 value at the start of b, and its size.
func scalar(typ protowire.Type, b []byte, off int) (uint64, int, *Error) {
	switch typ {
	case protowire.VarintType:
		if len(b) > 0 && b[0] < 0x80 {
			return uint64(b[0]), 1, nil
		}
		u, m := protowire.ConsumeVarint(b)
		if m < 0 {
			return 0, 0, fail(ErrMalformed, off, "truncated or over-long varint")
		}
		return u, m, nil
	case protowire.Fixed32Type:
		if len(b) < 4 {
			return 0, 0, fail(ErrMalformed, off, "fixed32 needs 4 bytes, %d left", len(b))
		}
		return uint64(binary.LittleEndian.Uint32(b)), 4, nil
	case protowire.Fixed64Type:
		if len(b) < 8 {
			return 0, 0, fail(ErrMalformed, off, "fixed64 needs 8 bytes, %d left", len(b))
		}
		return binary.LittleEndian.Uint64(b), 8, nil
	}
	return 0, 0, nil
}

// pathElem names field f (number num) in an error's path; a repeated field gets the index of this
// occurrence, found by counting the earlier ones in before. Counting only when there is an error
// keeps the bookkeeping out of the hot loop.
func pathElem(f *fieldDesc, num protowire.Number, before []byte) string {
	if !f.repeated {
		return f.name
	}
	idx := 0
	for len(before) > 0 {
		n, typ, m := protowire.ConsumeField(before)
		if m < 0 {
			break
		}
		if n == num && typ == f.kind.wireType() {
			idx++
		}
		before = before[m:]
	}
	return f.name + "[" + strconv.Itoa(idx) + "]"
}

// value validates the contents of length-delimited field f.
func (v *validator) value(f *fieldDesc, val []byte, off int) *Error {
	switch f.kind {
	case kindString:
		if !utf8.Valid(val) {
			bad := firstInvalidUTF8(val)
			return fail(ErrInvalidUTF8, off+bad, "byte 0x%02x at position %d of a %d-byte string", val[bad], bad, len(val))
		}
	case kindTraceID:
		if len(val) != 0 && len(val) != 16 {
			return fail(ErrInvalidID, off, "trace id has %d bytes, want 16", len(val))
		}
	case kindSpanID:
		if len(val) != 0 && len(val) != 8 {
			return fail(ErrInvalidID, off, "span id has %d bytes, want 8", len(val))
		}
	case kindMessage:
		return v.message(f.msg, val, off)
	}
	return nil
}

// plainAttribute validates the field at the start of b when it is an attribute of d of the usual
// layout (plainKeyValue), with one-byte tag and length, without the general field machinery, and
// returns its size; 0 for anything else, which the general walk validates (and locates the
// problem in, if there is one).
func (v *validator) plainAttribute(d *msgDesc, b []byte) int {
	if d.attrTag == 0 || len(b) < 2 || b[0] != d.attrTag || b[1] >= 0x80 || v.depth >= MaxValueDepth {
		return 0
	}
	end := 2 + int(b[1])
	if end > len(b) {
		return 0
	}
	key, ok := plainKeyValue(b[2:end])
	if !ok {
		return 0
	}
	if d == descSpan && v.w != nil {
		v.w.sp.set(&field{num: fieldSpanAttributes, typ: protowire.BytesType, b: b[2:end:end]}, b)
		if len(v.w.watch) > 0 {
			v.w.see(key)
		}
	}
	return end
}

// plainKeyValue reports whether KeyValue kv is valid and of the layout that almost every
// attribute has, and returns its key: a key and a string, int or bool value, each field once,
// with one-byte lengths.
// Such an attribute is checked without walking its two messages; any other, and any invalid one
// (to find where it is wrong), takes the general walk.
func plainKeyValue(kv []byte) (key []byte, ok bool) {
	key, val, ok := shortKeyValue(kv)
	if !ok || len(val) == 0 {
		return nil, false
	}
	if _, ok := shortString(val); ok {
		// The key, the value's tag and lengths (all below 0x80) and the string: valid UTF-8 as a
		// whole exactly when the key and the string are, since no sequence spans ASCII bytes.
		return key, utf8.Valid(kv[2:])
	}
	switch val[0] {
	case fieldValueInt << 3, fieldValueBool << 3: // wire type 0, varint
		_, n := protowire.ConsumeVarint(val[1:])
		return key, n == len(val)-1 && utf8.Valid(key)
	}
	return nil, false
}

// wireError describes a protowire error code without protowire's "proto: " prefix, which would
// repeat what Error.Error says (protobuf-go randomly writes that prefix with a non-breaking space,
// to keep callers from matching its text).
func wireError(n int) string {
	return strings.TrimLeft(strings.TrimPrefix(protowire.ParseError(n).Error(), "proto:"), " \u00a0")
}

// firstInvalidUTF8 is the index of the first byte of b that does not start a valid UTF-8 sequence.
func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return 0
}
