package testclient

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/rewind-broker/rewind/protocol"
)

func TestOpenDevPush(t *testing.T) {
	keys, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	text, _ := protocol.TextMessage{Source: 1, Destination: 2, Text: "hi"}.Encode()
	stored := protocol.Datagram{Type: protocol.TypeMessageText, Flags: protocol.FlagBuffering, Number: 7, Data: text}.MustEncode()
	sealed, err := protocol.Seal(keys.Public(), stored)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString

	typ, enc, raw, d, err := openDevPush(map[string]string{"type": "data", "enc": "aes128gcm", "body": b64(sealed)}, keys)
	if err != nil || typ != "data" || enc != "aes128gcm" || len(raw) != len(sealed) || d == nil || d.Number != 7 || d.Type != protocol.TypeMessageText {
		t.Fatalf("sealed data push: %q %q %d %v %v", typ, enc, len(raw), d, err)
	}
	if _, _, raw, d, err := openDevPush(map[string]string{"type": "wake"}, keys); err != nil || raw != nil || d != nil {
		t.Fatalf("wake without body: %v %v %v", raw, d, err)
	}
	wakeup := protocol.Datagram{Type: protocol.TypeTerminalWakeup, Flags: protocol.FlagBuffering, Data: protocol.EncodeU32(3)}.MustEncode()
	if _, _, _, d, err := openDevPush(map[string]string{"type": "wake", "enc": "none", "body": b64(wakeup)}, keys); err != nil || d.Type != protocol.TypeTerminalWakeup {
		t.Fatalf("plain wake-up: %v %v", d, err)
	}
	other, _ := GenerateKeys()
	for name, data := range map[string]map[string]string{
		"unknown type":      {"type": "alert"},
		"not base64url":     {"type": "data", "enc": "none", "body": "a+b/"},
		"other keys":        {"type": "data", "enc": "aes128gcm", "body": b64(mustSeal(t, other, stored))},
		"unknown enc":       {"type": "data", "enc": "rot13", "body": b64(stored)},
		"wake carries text": {"type": "wake", "enc": "none", "body": b64(stored)},
		"data carries wake": {"type": "data", "enc": "none", "body": b64(wakeup)},
	} {
		if _, _, _, _, err := openDevPush(data, keys); !errors.Is(err, ErrBadPush) {
			t.Errorf("%s: %v, want ErrBadPush", name, err)
		}
	}
}

func mustSeal(t *testing.T, k *PushKeyPair, plain []byte) []byte {
	t.Helper()
	b, err := protocol.Seal(k.Public(), plain)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
