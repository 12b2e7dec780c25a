// Package structure holds tests of the code base's shape rather than its behaviour.
package structure

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// maxFuncLines is the longest a function may be, from its func keyword to its closing brace.
// A longer one does several things; name them as functions of their own. Tests are exempt
// (a table is long by nature), and so is generated code.
const maxFuncLines = 60

// TestNoFunctionIsLongerThanTheLimit keeps every hand-written function in the module, test
// tooling and examples included, at most maxFuncLines long.
func TestNoFunctionIsLongerThanTheLimit(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "bin" || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || strings.HasPrefix(d.Name(), "zz_generated") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		if ast.IsGenerated(f) {
			return nil
		}
		checked++
		for _, long := range longFunctions(fset, f) {
			t.Errorf("%s: %s", path, long)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked %d files; the walk from %s did not find the module", checked, root)
	}
}

// longFunctions describes the functions and function literals of f that are too long.
func longFunctions(fset *token.FileSet, f *ast.File) []string {
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		var body *ast.BlockStmt
		name := "a function literal"
		switch fn := n.(type) {
		case *ast.FuncDecl:
			body, name = fn.Body, fn.Name.Name
		case *ast.FuncLit:
			body = fn.Body
		}
		if body == nil {
			return true
		}
		start := fset.Position(n.Pos())
		if lines := fset.Position(body.Rbrace).Line - start.Line + 1; lines > maxFuncLines {
			out = append(out, fmt.Sprintf("%s at line %d has %d lines, more than %d", name, start.Line, lines, maxFuncLines))
		}
		return true
	})
	return out
}
