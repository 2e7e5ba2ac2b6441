// Command tlogcheck checks cryptohost's transparency-log artifacts with Go's reference
// implementations, golang.org/x/mod/sumdb/note and golang.org/x/mod/sumdb/tlog, so that the
// Rust code is tested against an independent implementation.
//
// Build (Debian packages golang-go and golang-golang-x-mod-dev, no network):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o tlogcheck tlogcheck.go
//
// Usage:
//
//	tlogcheck verify VKEY CHECKPOINT_FILE LOG_FILE
//	tlogcheck prove-check VKEY CHECKPOINT_FILE LINE_FILE INDEX PROOF_FILE
//	tlogcheck consistency VKEY OLD_CHECKPOINT_FILE NEW_CHECKPOINT_FILE PROOF_FILE
//	tlogcheck sign NAME CHECKPOINT_BODY_FILE
//	tlogcheck prove LOG_FILE INDEX SIZE
//	tlogcheck prove-tree LOG_FILE OLD_SIZE NEW_SIZE
//
// A log file is a sequence of newline-terminated lines; each line's bytes without its newline
// are one record (leaf data). Bytes after the last newline are not a record. A proof file holds
// one standard-base64 hash per line. A checkpoint file is a signed note whose text is
// "origin\nsize\nbase64(root)\n" plus optional extension lines (c2sp.org/tlog-checkpoint).
//
// Success prints a line starting with "ok" (or the requested data) and exits 0; any failure
// prints "tlogcheck: ..." on stderr and exits 1 (2 for usage errors).
package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// emptyRoot is the RFC 6962 root of the empty tree, SHA-256(""). (tlog.TreeHash returns the
// all-zero hash for size 0, so size 0 is handled here.)
var emptyRoot = tlog.Hash(sha256.Sum256(nil))

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	var err error
	switch os.Args[1] {
	case "verify":
		need(args, 3)
		err = cmdVerify(args[0], args[1], args[2])
	case "prove-check":
		need(args, 5)
		err = cmdProveCheck(args[0], args[1], args[2], args[3], args[4])
	case "consistency":
		need(args, 4)
		err = cmdConsistency(args[0], args[1], args[2], args[3])
	case "sign":
		need(args, 2)
		err = cmdSign(args[0], args[1])
	case "prove":
		need(args, 3)
		err = cmdProve(args[0], args[1], args[2])
	case "prove-tree":
		need(args, 3)
		err = cmdProveTree(args[0], args[1], args[2])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tlogcheck: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  tlogcheck verify VKEY CHECKPOINT_FILE LOG_FILE
  tlogcheck prove-check VKEY CHECKPOINT_FILE LINE_FILE INDEX PROOF_FILE
  tlogcheck consistency VKEY OLD_CHECKPOINT_FILE NEW_CHECKPOINT_FILE PROOF_FILE
  tlogcheck sign NAME CHECKPOINT_BODY_FILE
  tlogcheck prove LOG_FILE INDEX SIZE
  tlogcheck prove-tree LOG_FILE OLD_SIZE NEW_SIZE
`)
	os.Exit(2)
}

func need(args []string, n int) {
	if len(args) != n {
		usage()
	}
}

// checkpoint is the parsed text of a checkpoint note.
type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

// openCheckpoint reads the note at path, verifies it with the verifier key vkey (Ed25519 only in
// this version of x/mod) and parses its text strictly.
func openCheckpoint(vkey, path string) (checkpoint, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return checkpoint{}, fmt.Errorf("verifier key: %v", err)
	}
	msg, err := os.ReadFile(path)
	if err != nil {
		return checkpoint{}, err
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return checkpoint{}, fmt.Errorf("%s: %v", path, err)
	}
	cp, err := parseCheckpoint(n.Text)
	if err != nil {
		return checkpoint{}, fmt.Errorf("%s: %v", path, err)
	}
	return cp, nil
}

func parseCheckpoint(text string) (checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return checkpoint{}, errors.New("checkpoint text does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return checkpoint{}, fmt.Errorf("checkpoint has %d lines, want at least 3", len(lines))
	}
	for i, l := range lines {
		if l == "" {
			return checkpoint{}, fmt.Errorf("checkpoint line %d is empty", i+1)
		}
	}
	size, err := parseSize(lines[1])
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint size: %v", err)
	}
	root, err := parseHash(lines[2])
	if err != nil {
		return checkpoint{}, fmt.Errorf("checkpoint root: %v", err)
	}
	return checkpoint{origin: lines[0], size: size, root: root}, nil
}

// parseSize parses a non-negative decimal without sign or leading zeros.
func parseSize(s string) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%q is not a decimal number without leading zeros", s)
	}
	return strconv.ParseInt(s, 10, 64)
}

func parseHash(s string) (tlog.Hash, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return tlog.Hash{}, err
	}
	if len(b) != tlog.HashSize {
		return tlog.Hash{}, fmt.Errorf("%d bytes, want %d", len(b), tlog.HashSize)
	}
	var h tlog.Hash
	copy(h[:], b)
	return h, nil
}

// readRecords returns the newline-terminated lines of a log file, without their newlines.
func readRecords(path string) ([][]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var recs [][]byte
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return recs, nil
		}
		recs = append(recs, data[:i])
		data = data[i+1:]
	}
}

// store is an in-memory tlog.HashReader over the stored hashes of a log.
type store struct{ hashes []tlog.Hash }

func (s *store) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(s.hashes)) {
			return nil, fmt.Errorf("stored hash %d not available (have %d)", x, len(s.hashes))
		}
		out[i] = s.hashes[x]
	}
	return out, nil
}

// buildStore hashes records into a tlog store with tlog.StoredHashes.
func buildStore(recs [][]byte) (*store, error) {
	s := &store{}
	for i, r := range recs {
		hs, err := tlog.StoredHashes(int64(i), r, s)
		if err != nil {
			return nil, err
		}
		s.hashes = append(s.hashes, hs...)
	}
	return s, nil
}

// treeRoot returns the RFC 6962 root of the first size records of the log file.
func treeRoot(path string, size int64) (tlog.Hash, *store, error) {
	recs, err := readRecords(path)
	if err != nil {
		return tlog.Hash{}, nil, err
	}
	if int64(len(recs)) < size {
		return tlog.Hash{}, nil, fmt.Errorf("%s has %d complete lines, fewer than the tree size %d", path, len(recs), size)
	}
	s, err := buildStore(recs[:size])
	if err != nil {
		return tlog.Hash{}, nil, err
	}
	if size == 0 {
		return emptyRoot, s, nil
	}
	root, err := tlog.TreeHash(size, s)
	return root, s, err
}

func cmdVerify(vkey, cpPath, logPath string) error {
	cp, err := openCheckpoint(vkey, cpPath)
	if err != nil {
		return err
	}
	root, _, err := treeRoot(logPath, cp.size)
	if err != nil {
		return err
	}
	if root != cp.root {
		return fmt.Errorf("root of the first %d lines is %v, checkpoint says %v", cp.size, root, cp.root)
	}
	fmt.Printf("ok %d %v\n", cp.size, root)
	return nil
}

func readProof(path string) ([]tlog.Hash, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := strings.TrimSuffix(string(data), "\n")
	if text == "" {
		return nil, nil
	}
	var proof []tlog.Hash
	for i, l := range strings.Split(text, "\n") {
		h, err := parseHash(l)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %v", path, i+1, err)
		}
		proof = append(proof, h)
	}
	return proof, nil
}

func cmdProveCheck(vkey, cpPath, linePath, indexText, proofPath string) error {
	cp, err := openCheckpoint(vkey, cpPath)
	if err != nil {
		return err
	}
	line, err := os.ReadFile(linePath)
	if err != nil {
		return err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	index, err := parseSize(indexText)
	if err != nil {
		return fmt.Errorf("index: %v", err)
	}
	proof, err := readProof(proofPath)
	if err != nil {
		return err
	}
	if err := tlog.CheckRecord(tlog.RecordProof(proof), cp.size, cp.root, index, tlog.RecordHash(line)); err != nil {
		return fmt.Errorf("inclusion of record %d in tree %d: %v", index, cp.size, err)
	}
	fmt.Printf("ok %d %d\n", index, cp.size)
	return nil
}

func cmdConsistency(vkey, oldPath, newPath, proofPath string) error {
	oldCp, err := openCheckpoint(vkey, oldPath)
	if err != nil {
		return err
	}
	newCp, err := openCheckpoint(vkey, newPath)
	if err != nil {
		return err
	}
	proof, err := readProof(proofPath)
	if err != nil {
		return err
	}
	if oldCp.origin != newCp.origin {
		return fmt.Errorf("origins differ: %q and %q", oldCp.origin, newCp.origin)
	}
	if oldCp.size == 0 {
		// tlog.CheckTree needs a non-empty old tree; the empty tree is a prefix of every tree.
		if len(proof) != 0 || oldCp.root != emptyRoot {
			return errors.New("old tree is empty: want an empty proof and root SHA-256(\"\")")
		}
	} else if err := tlog.CheckTree(tlog.TreeProof(proof), newCp.size, newCp.root, oldCp.size, oldCp.root); err != nil {
		return fmt.Errorf("consistency of tree %d with tree %d: %v", oldCp.size, newCp.size, err)
	}
	fmt.Printf("ok %d %d\n", oldCp.size, newCp.size)
	return nil
}

func cmdSign(name, bodyPath string) error {
	body, err := os.ReadFile(bodyPath)
	if err != nil {
		return err
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return err
	}
	msg, err := note.Sign(&note.Note{Text: string(body)}, signer)
	if err != nil {
		return err
	}
	fmt.Printf("%s\n%s", vkey, msg)
	return nil
}

func cmdProve(logPath, indexText, sizeText string) error {
	index, err := parseSize(indexText)
	if err != nil {
		return fmt.Errorf("index: %v", err)
	}
	size, err := parseSize(sizeText)
	if err != nil {
		return fmt.Errorf("size: %v", err)
	}
	_, s, err := treeRoot(logPath, size)
	if err != nil {
		return err
	}
	proof, err := tlog.ProveRecord(size, index, s)
	if err != nil {
		return err
	}
	for _, h := range proof {
		fmt.Println(h)
	}
	return nil
}

func cmdProveTree(logPath, oldText, newText string) error {
	oldSize, err := parseSize(oldText)
	if err != nil {
		return fmt.Errorf("old size: %v", err)
	}
	newSize, err := parseSize(newText)
	if err != nil {
		return fmt.Errorf("new size: %v", err)
	}
	_, s, err := treeRoot(logPath, newSize)
	if err != nil {
		return err
	}
	proof, err := tlog.ProveTree(newSize, oldSize, s)
	if err != nil {
		return err
	}
	for _, h := range proof {
		fmt.Println(h)
	}
	return nil
}
