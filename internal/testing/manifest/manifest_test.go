package manifest

import "testing"

func TestDecode(t *testing.T) {
	for name, tc := range map[string]struct {
		in    string
		kinds []string
		err   bool
	}{
		"a YAML stream gives its objects in order, empty documents left out": {
			in:    "---\nkind: A\n---\n# nothing\n---\nkind: B\n",
			kinds: []string{"A", "B"},
		},
		"JSON is an object too": {in: `{"kind": "C"}`, kinds: []string{"C"}},
		"nothing is no object":  {in: "", kinds: nil},
		"a broken document is an error": {
			in:  "kind: A\n---\nkind: [\n",
			err: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			objs, err := Decode(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("error %v, want an error: %v", err, tc.err)
			}
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.GetKind())
			}
			if len(kinds) != len(tc.kinds) {
				t.Fatalf("kinds %v, want %v", kinds, tc.kinds)
			}
			for i := range kinds {
				if kinds[i] != tc.kinds[i] {
					t.Errorf("kinds %v, want %v", kinds, tc.kinds)
				}
			}
		})
	}
}
