package protocol

import (
	"encoding/binary"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// AppendUTF16LE appends s encoded as UTF-16LE. s must be valid UTF-8.
func AppendUTF16LE(dst []byte, s string) ([]byte, error) {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				return dst, fmt.Errorf("%w: text is not valid UTF-8 at byte %d", ErrMalformed, i)
			}
		}
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			dst = binary.LittleEndian.AppendUint16(dst, uint16(r1))
			dst = binary.LittleEndian.AppendUint16(dst, uint16(r2))
			continue
		}
		dst = binary.LittleEndian.AppendUint16(dst, uint16(r))
	}
	return dst, nil
}

// DecodeUTF16LE decodes UTF-16LE text. Odd length and unpaired surrogates are errors, not
// replacement characters: a terminal that sends them has a bug worth reporting.
func DecodeUTF16LE(b []byte) (string, error) {
	if len(b)%2 != 0 {
		return "", fmt.Errorf("%w: UTF-16 text of odd length %d", ErrMalformed, len(b))
	}
	out := make([]byte, 0, len(b)+len(b)/2)
	for i := 0; i < len(b); i += 2 {
		u := rune(binary.LittleEndian.Uint16(b[i:]))
		switch {
		case u >= 0xd800 && u < 0xdc00:
			if i+4 > len(b) {
				return "", fmt.Errorf("%w: unpaired high surrogate at byte %d", ErrMalformed, i)
			}
			u2 := rune(binary.LittleEndian.Uint16(b[i+2:]))
			if u2 < 0xdc00 || u2 >= 0xe000 {
				return "", fmt.Errorf("%w: unpaired high surrogate at byte %d", ErrMalformed, i)
			}
			out = utf8.AppendRune(out, utf16.DecodeRune(u, u2))
			i += 2
		case u >= 0xdc00 && u < 0xe000:
			return "", fmt.Errorf("%w: unpaired low surrogate at byte %d", ErrMalformed, i)
		default:
			out = utf8.AppendRune(out, u)
		}
	}
	return string(out), nil
}

// CheckUTF16LE reports what DecodeUTF16LE would refuse in b, without decoding it: the router's
// check on texts it forwards as bytes. It does not allocate.
func CheckUTF16LE(b []byte) error {
	if len(b)%2 != 0 {
		return fmt.Errorf("%w: UTF-16 text of odd length %d", ErrMalformed, len(b))
	}
	for i := 0; i < len(b); i += 2 {
		u := binary.LittleEndian.Uint16(b[i:])
		switch {
		case u >= 0xd800 && u < 0xdc00:
			if i+4 > len(b) {
				return fmt.Errorf("%w: unpaired high surrogate at byte %d", ErrMalformed, i)
			}
			if u2 := binary.LittleEndian.Uint16(b[i+2:]); u2 < 0xdc00 || u2 >= 0xe000 {
				return fmt.Errorf("%w: unpaired high surrogate at byte %d", ErrMalformed, i)
			}
			i += 2
		case u >= 0xdc00 && u < 0xe000:
			return fmt.Errorf("%w: unpaired low surrogate at byte %d", ErrMalformed, i)
		}
	}
	return nil
}
