package testclient

import (
	"crypto/ecdh"
	"crypto/rand"
	"fmt"

	"github.com/rewind-broker/rewind/protocol"
)

// pushAuthSize is the size of the Web Push auth secret (RFC 8291).
const pushAuthSize = 16

// PushKeyPair is a terminal's Web Push keys, generated on the device as a phone does: the
// private half never leaves it, the public half (Public) is sent in TERMINAL_ATTACH, and push
// bodies sealed by the broker are opened with Open.
type PushKeyPair struct {
	Private *ecdh.PrivateKey // P-256
	Auth    []byte           // 16 random bytes, shared with the broker
}

// GenerateKeys returns a fresh P-256 key pair and auth secret.
func GenerateKeys() (*PushKeyPair, error) {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testclient: push keys: %w", err)
	}
	auth := make([]byte, pushAuthSize)
	_, _ = rand.Read(auth) // never fails
	return &PushKeyPair{Private: priv, Auth: auth}, nil
}

// Public returns what the terminal registers: the uncompressed public key and the auth secret.
func (k *PushKeyPair) Public() protocol.PushKeys {
	return protocol.PushKeys{P256DH: k.Private.PublicKey().Bytes(), Auth: k.Auth}
}

// Open decrypts a push body sealed for k (RFC 8291 aes128gcm). Errors wrap the protocol
// package's ErrPush… sentinels.
func (k *PushKeyPair) Open(body []byte) ([]byte, error) {
	return protocol.Open(k.Private, k.Auth, body)
}
