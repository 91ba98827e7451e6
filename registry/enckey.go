package registry

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// ParseEncryptionKey decodes an at-rest encryption key given as text (a flag,
// an environment variable or the contents of a key file): 32, 48 or 64 hex
// digits, or standard or URL-safe base64 (padded or not) of 16, 24 or 32
// bytes. Surrounding white space is ignored. A 32-character string made only
// of hex digits is read as hex. The error never repeats the input.
func ParseEncryptionKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	switch len(s) {
	case 32, 48, 64:
		if k, err := hex.DecodeString(s); err == nil {
			return k, nil
		}
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		k, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if validKeyLen(len(k)) {
			return k, nil
		}
		return nil, fmt.Errorf("%w: encryption key decodes to %d bytes; want 16, 24 or 32", ErrInvalid, len(k))
	}
	return nil, fmt.Errorf("%w: encryption key (%d characters) is neither 32/48/64 hex digits nor base64 of 16/24/32 bytes", ErrInvalid, len(s))
}

func validKeyLen(n int) bool { return n == 16 || n == 24 || n == 32 }
