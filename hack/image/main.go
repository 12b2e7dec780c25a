// Command image builds an OCI image tarball from static binaries without a container engine.
//
//	go run ./hack/image --tag ghcr.io/tracestream/tracestream:0.1.0 --out bin/image.tar \
//	    --file bin/manager:/manager --file bin/exporter:/exporter --entrypoint /manager
//
// The image has one layer: the given files, a passwd/group naming the non-root user 65532 and, when
// the build host has them, the system CA certificates (the exporter dials rediss:// endpoints). The
// tarball is in docker-archive form, which `ctr images import` and `docker load` both accept.
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// nonRoot is distroless's "nonroot" user: a fixed numeric id so that runAsNonRoot can verify it.
const nonRoot = 65532

type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	var files fileList
	tag := flag.String("tag", "", "image reference to tag the image with (required)")
	out := flag.String("out", "", "path of the tarball to write (required)")
	entrypoint := flag.String("entrypoint", "", "entrypoint of the image")
	caBundle := flag.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to include when present")
	flag.Var(&files, "file", "SRC:DST file to add, executable (repeatable)")
	flag.Parse()
	if err := build(*tag, *out, *entrypoint, *caBundle, files); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func build(tag, out, entrypoint, caBundle string, files []string) error {
	if tag == "" || out == "" || len(files) == 0 {
		return errors.New("--tag, --out and at least one --file are required")
	}
	ref, err := name.ParseReference(tag)
	if err != nil {
		return fmt.Errorf("--tag %q: %w", tag, err)
	}
	layer, err := rootfsLayer(files, caBundle)
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), layer)
	if err != nil {
		return fmt.Errorf("appending layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.Architecture, cfg.OS = "amd64", "linux"
	cfg.Config.User = fmt.Sprintf("%d:%d", nonRoot, nonRoot)
	cfg.Config.Env = []string{"PATH=/", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	if entrypoint != "" {
		cfg.Config.Entrypoint = []string{entrypoint}
	}
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.source": "https://github.com/tracestream/tracestream"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return fmt.Errorf("setting image config: %w", err)
	}
	tmp := out + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		return fmt.Errorf("writing %s: %w", out, err)
	}
	return os.Rename(tmp, out)
}

// rootfsLayer builds the single layer. Timestamps are fixed so that equal inputs give equal digests.
func rootfsLayer(files []string, caBundle string) (v1.Layer, error) {
	var buf bytes.Buffer
	l := &layerWriter{tw: tar.NewWriter(&buf), dirs: map[string]bool{}}
	if err := l.addDir("tmp"); err != nil {
		return nil, err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonRoot, nonRoot)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", nonRoot)
	if err := l.addFile("etc/passwd", []byte(passwd), 0o644); err != nil {
		return nil, err
	}
	if err := l.addFile("etc/group", []byte(group), 0o644); err != nil {
		return nil, err
	}
	if ca, err := os.ReadFile(caBundle); err == nil {
		if err := l.addFile("etc/ssl/certs/ca-certificates.crt", ca, 0o644); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		src, dst, ok := strings.Cut(f, ":")
		if !ok || src == "" || !strings.HasPrefix(dst, "/") {
			return nil, fmt.Errorf("--file %q: want SRC:/DST", f)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, fmt.Errorf("--file %q: %w", f, err)
		}
		if err := l.addFile(dst, data, 0o755); err != nil {
			return nil, err
		}
	}
	if err := l.tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// layerWriter writes the layer's tar: every file's parent directories once, before the file.
type layerWriter struct {
	tw   *tar.Writer
	dirs map[string]bool
}

// epoch is every entry's modification time.
var epoch = time.Unix(0, 0)

// addDir adds dir and its parents that are not in the layer yet; /tmp is world-writable and
// sticky, as programs expect.
func (l *layerWriter) addDir(dir string) error {
	parts := strings.Split(strings.Trim(dir, "/"), "/")
	for i := range parts {
		d := strings.Join(parts[:i+1], "/") + "/"
		if d == "/" || l.dirs[d] {
			continue
		}
		l.dirs[d] = true
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := l.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode, ModTime: epoch}); err != nil {
			return err
		}
	}
	return nil
}

// addFile adds a regular file at dst (absolute or not) after its directories.
func (l *layerWriter) addFile(dst string, data []byte, mode int64) error {
	dst = strings.TrimPrefix(dst, "/")
	if i := strings.LastIndex(dst, "/"); i > 0 {
		if err := l.addDir(dst[:i]); err != nil {
			return err
		}
	}
	if err := l.tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: dst, Mode: mode, Size: int64(len(data)), ModTime: epoch}); err != nil {
		return err
	}
	_, err := l.tw.Write(data)
	return err
}
