package registry_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/rewind-broker/rewind/registry"
)

func TestParseEncryptionKey(t *testing.T) {
	for _, n := range []int{16, 24, 32} {
		key := testKey(n)
		for _, s := range []string{
			hex.EncodeToString(key),
			strings.ToUpper(hex.EncodeToString(key)),
			base64.StdEncoding.EncodeToString(key),
			base64.RawStdEncoding.EncodeToString(key),
			base64.URLEncoding.EncodeToString(key),
			"  " + base64.StdEncoding.EncodeToString(key) + "\n",
			hex.EncodeToString(key) + "\n",
		} {
			got, err := registry.ParseEncryptionKey(s)
			if err != nil || !bytes.Equal(got, key) {
				t.Errorf("ParseEncryptionKey(%q) = %x, %v; want %x", s, got, err, key)
			}
		}
	}
	secret := "not-a-key-but-secret-looking-text"
	for _, s := range []string{
		"",
		hex.EncodeToString(testKey(15)), // 30 hex digits
		hex.EncodeToString(testKey(20)), // 40 hex digits
		base64.StdEncoding.EncodeToString(testKey(8)), // 8 bytes
		base64.StdEncoding.EncodeToString(testKey(33)),
		strings.Repeat("g", 64), // 64 chars, not hex; base64 of 48 bytes
		secret,
	} {
		_, err := registry.ParseEncryptionKey(s)
		if !errors.Is(err, registry.ErrInvalid) {
			t.Errorf("ParseEncryptionKey(%q): err = %v, want ErrInvalid", s, err)
		}
		if err != nil && s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error %q repeats the input", err)
		}
	}
}
