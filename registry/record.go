package registry

import (
	"bytes"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// recordVersion is written into every stored record. A record with another
// version is refused rather than misread.
const recordVersion = 1

// terminalRecord is the stored form of a Terminal; the id is the key.
// Times are Unix nanoseconds, 0 for the zero time.
type terminalRecord struct {
	Version  int    `msgpack:"v"`
	Password string `msgpack:"p"`
	Name     string `msgpack:"n,omitempty"`
	Created  int64  `msgpack:"c"`
	Updated  int64  `msgpack:"u"`
	LastSeen int64  `msgpack:"s,omitempty"`
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// validateTerminal checks the fields a caller controls.
func validateTerminal(t Terminal) error {
	switch {
	case t.ID == 0:
		return fmt.Errorf("%w: terminal id 0", ErrInvalid)
	case t.Password == "":
		return fmt.Errorf("%w: terminal %d: empty password", ErrInvalid, t.ID)
	case len(t.Password) > MaxPasswordBytes:
		return fmt.Errorf("%w: terminal %d: password of %d bytes, limit %d", ErrInvalid, t.ID, len(t.Password), MaxPasswordBytes)
	}
	return validateName(t.ID, t.Name)
}

func validateName(id uint32, name string) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: terminal %d: name is not UTF-8", ErrInvalid, id)
	}
	if n := utf8.RuneCountInString(name); n > MaxNameRunes {
		return fmt.Errorf("%w: terminal %d: name of %d runes, limit %d", ErrInvalid, id, n, MaxNameRunes)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: terminal %d: name contains unprintable rune %U", ErrInvalid, id, r)
		}
	}
	return nil
}

func encodeTerminal(t Terminal) ([]byte, error) {
	return msgpack.Marshal(&terminalRecord{
		Version:  recordVersion,
		Password: t.Password,
		Name:     t.Name,
		Created:  nanos(t.Created),
		Updated:  nanos(t.Updated),
		LastSeen: nanos(t.LastSeen),
	})
}

// decodeStrict decodes exactly one msgpack value from b into v and refuses
// trailing bytes.
func decodeStrict(b []byte, v any) error {
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r)
	if err := dec.Decode(v); err != nil {
		return err
	}
	if r.Len() != 0 {
		return fmt.Errorf("%d trailing bytes", r.Len())
	}
	return nil
}

// decodeTerminal decodes the stored record of terminal id. Any malformed
// input gives an error wrapping ErrCorrupt.
func decodeTerminal(id uint32, b []byte) (Terminal, error) {
	var rec terminalRecord
	if err := decodeStrict(b, &rec); err != nil {
		return Terminal{}, fmt.Errorf("%w: terminal %d: %v", ErrCorrupt, id, err)
	}
	if rec.Version != recordVersion {
		return Terminal{}, fmt.Errorf("%w: terminal %d: record version %d", ErrCorrupt, id, rec.Version)
	}
	t := Terminal{
		ID:       id,
		Password: rec.Password,
		Name:     rec.Name,
		Created:  fromNanos(rec.Created),
		Updated:  fromNanos(rec.Updated),
		LastSeen: fromNanos(rec.LastSeen),
	}
	if err := validateTerminal(t); err != nil {
		return Terminal{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return t, nil
}
