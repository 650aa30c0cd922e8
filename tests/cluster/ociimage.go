// `testcluster oci-image`: writes a single-layer OCI image archive (oci-layout, index.json,
// blobs) from host files, for the node's pause image and small test images, without a
// daemon or a base image. The result is reproducible (fixed timestamps, sorted entries)
// and loads with `ctr images import` / `testcluster load-image`.
//
//	testcluster oci-image --out FILE.tar --name REF --entrypoint /bin [--user 65532:65532]
//	                      HOSTFILE:/PATH[:MODE]...
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

type blob struct {
	mediaType string
	data      []byte
}

func (b blob) digest() string {
	sum := sha256.Sum256(b.data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func (b blob) descriptor() map[string]any {
	return map[string]any{"mediaType": b.mediaType, "digest": b.digest(), "size": len(b.data)}
}

func runOCIImage(args []string) error {
	fs := flag.NewFlagSet("oci-image", flag.ExitOnError)
	out := fs.String("out", "", "archive to write")
	name := fs.String("name", "", "image name, e.g. localhost/app:1")
	entrypoint := fs.String("entrypoint", "", "entrypoint path inside the image")
	user := fs.String("user", "", "user[:group] the image runs as")
	_ = fs.Parse(args)
	if *out == "" || *name == "" || *entrypoint == "" || fs.NArg() == 0 {
		return fmt.Errorf("usage: testcluster oci-image --out FILE.tar --name REF --entrypoint PATH [--user UID:GID] HOSTFILE:/PATH[:MODE]...")
	}
	epoch := time.Unix(0, 0).UTC()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	dirs := map[string]bool{}
	type entry struct {
		src, dst string
		mode     int64
	}
	var entries []entry
	for _, a := range fs.Args() {
		parts := strings.Split(a, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[1], "/") {
			return fmt.Errorf("%q: want HOSTFILE:/PATH[:MODE]", a)
		}
		mode := int64(0o755)
		if len(parts) > 2 {
			m, err := strconv.ParseInt(parts[2], 8, 32)
			if err != nil {
				return fmt.Errorf("%q: mode: %w", a, err)
			}
			mode = m
		}
		entries = append(entries, entry{parts[0], path.Clean(parts[1]), mode})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].dst < entries[j].dst })
	for _, e := range entries {
		data, err := os.ReadFile(e.src)
		if err != nil {
			return err
		}
		var parents []string
		for d := path.Dir(e.dst); d != "/"; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if !dirs[d] {
				dirs[d] = true
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d[1:] + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
					return err
				}
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.dst[1:], Mode: e.mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	diffID := sha256.Sum256(layer.Bytes())
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.ModTime = epoch
	if _, err := zw.Write(layer.Bytes()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	layerBlob := blob{"application/vnd.oci.image.layer.v1.tar+gzip", gz.Bytes()}
	cfg := map[string]any{
		"created":      epoch.Format(time.RFC3339),
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config": map[string]any{
			"Entrypoint": []string{*entrypoint},
			"User":       *user,
			"Env":        []string{"PATH=/"},
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(diffID[:])}},
	}
	cfgJSON, _ := json.Marshal(cfg)
	cfgBlob := blob{"application/vnd.oci.image.config.v1+json", cfgJSON}
	manJSON, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        cfgBlob.descriptor(),
		"layers":        []any{layerBlob.descriptor()},
	})
	manBlob := blob{"application/vnd.oci.image.manifest.v1+json", manJSON}
	md := manBlob.descriptor()
	md["annotations"] = map[string]string{
		"io.containerd.image.name":          *name,
		"org.opencontainers.image.ref.name": *name,
	}
	md["platform"] = map[string]string{"architecture": runtime.GOARCH, "os": "linux"}
	idxJSON, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []any{md},
	})

	var arch bytes.Buffer
	aw := tar.NewWriter(&arch)
	put := func(name string, data []byte) error {
		if err := aw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := aw.Write(data)
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := put("index.json", idxJSON); err != nil {
		return err
	}
	for _, b := range []blob{cfgBlob, layerBlob, manBlob} {
		if err := put("blobs/sha256/"+strings.TrimPrefix(b.digest(), "sha256:"), b.data); err != nil {
			return err
		}
	}
	if err := aw.Close(); err != nil {
		return err
	}
	tmp := *out + ".tmp"
	if err := os.WriteFile(tmp, arch.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, *out)
}
