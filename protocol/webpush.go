package protocol

// Web Push message encryption (RFC 8291) of push bodies, PROTOCOL.md §7.
//
// The broker seals a whole Rewind datagram for one terminal with the terminal's registered
// P-256 public key (p256dh) and 16-byte auth secret. The result is an RFC 8188 "aes128gcm"
// body holding exactly one record:
//
//	offset size field
//	0      16   salt (random per message)
//	16     4    rs, record size, big-endian (4096, or the record length if larger)
//	20     1    idlen = 65
//	21     65   keyid = the sender's ephemeral P-256 public key, uncompressed (0x04|X|Y)
//	86     n+17 record = AES-128-GCM(plaintext | 0x02) | 16-byte tag
//
// Key schedule (RFC 8291 §3.3-3.4, RFC 8188 §2.2), HKDF-SHA-256 throughout:
//
//	ecdh_secret = ECDH(as_private, ua_public)          (as: sender, ua: terminal)
//	PRK_key     = HKDF-Extract(salt=auth_secret, IKM=ecdh_secret)
//	key_info    = "WebPush: info" | 0x00 | ua_public | as_public
//	IKM         = HKDF-Expand(PRK_key, key_info, 32)
//	PRK         = HKDF-Extract(salt=salt, IKM=IKM)
//	CEK         = HKDF-Expand(PRK, "Content-Encoding: aes128gcm" | 0x00, 16)
//	NONCE       = HKDF-Expand(PRK, "Content-Encoding: nonce" | 0x00, 12)
//
// The nonce is used as is: a single record has sequence number 0, so the XOR of RFC 8188 is
// a no-op. The header is not authenticated as such: salt and keyid are bound through the key
// schedule, idlen is checked, and rs only has to be large enough for the one record.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	// MaxPushPayload is the provider's payload limit (FCM and APNs) for a sealed body.
	// Seal does not enforce it: compare SealedSize with it and fall back to a wake-only push.
	MaxPushPayload = 4096
	// MaxPushPlaintext is the largest plaintext Seal accepts and Open returns.
	MaxPushPlaintext = 0xffff

	pushSaltSize    = 16
	pushKeySize     = 65 // uncompressed P-256 point
	pushAuthSize    = 16
	pushTagSize     = 16
	pushHeaderSize  = pushSaltSize + 4 + 1 + pushKeySize // 86
	pushOverhead    = pushHeaderSize + 1 + pushTagSize   // header, padding delimiter, tag
	pushMinRecord   = 1 + pushTagSize                    // a delimiter and the tag
	pushMaxRecord   = MaxPushPlaintext + pushMinRecord
	pushMinRS       = 18 // RFC 8188 §2.1
	pushDefaultRS   = 4096
	pushDelimLast   = 0x02 // padding delimiter of the last record
	pushKeyInfoSize = len(pushKeyInfoLabel) + 2*pushKeySize
)

const (
	pushKeyInfoLabel   = "WebPush: info\x00"
	pushCEKInfo        = "Content-Encoding: aes128gcm\x00"
	pushNonceInfo      = "Content-Encoding: nonce\x00"
	pushCEKSize        = 16
	pushNonceSize      = 12
	pushSecretSize     = 32
	pushECDHSecretSize = 32
)

// Web Push errors, checked with errors.Is. Every rejection of an input by Seal, SealWith,
// Open or PushKeys.Validate wraps exactly one of them.
var (
	// ErrPushTruncated: the body ends inside the header or its record is shorter than a
	// delimiter plus the tag.
	ErrPushTruncated = errors.New("web push: body truncated")
	// ErrPushBadHeader: rs below 18, idlen other than 65, or a salt that is not 16 bytes.
	ErrPushBadHeader = errors.New("web push: bad aes128gcm header")
	// ErrPushBadKey: a public key that is not an uncompressed point on P-256 (in PushKeys or
	// in the body's keyid), an auth secret that is not 16 bytes, or a private key that is
	// missing or not P-256.
	ErrPushBadKey = errors.New("web push: bad key")
	// ErrPushDecrypt: the record does not authenticate (tampered body, wrong private key or
	// wrong auth secret).
	ErrPushDecrypt = errors.New("web push: decryption failed")
	// ErrPushPadding: the decrypted record has no 0x02 delimiter as its last non-zero byte
	// (all zeros, or 0x01, which marks a record that is not the last).
	ErrPushPadding = errors.New("web push: bad record padding")
	// ErrPushTooLarge: a plaintext over MaxPushPlaintext bytes.
	ErrPushTooLarge = errors.New("web push: too large")
	// ErrPushTrailingData: the body is longer than one record of size rs, so more than one
	// record or trailing bytes follow; only single-record bodies are accepted.
	ErrPushTrailingData = errors.New("web push: data after the single record")
)

// PushKeys is what a terminal registers: its P-256 public key (65-byte uncompressed) and
// 16-byte auth secret.
type PushKeys struct {
	P256DH []byte // uncompressed P-256 point, 0x04|X|Y
	Auth   []byte // auth secret, 16 bytes
}

// Validate reports, wrapping ErrPushBadKey, whether P256DH is not a 65-byte uncompressed
// point on P-256 or Auth is not exactly 16 bytes.
func (k PushKeys) Validate() error {
	_, err := k.publicKey()
	return err
}

func (k PushKeys) publicKey() (*ecdh.PublicKey, error) {
	if len(k.P256DH) != pushKeySize {
		return nil, fmt.Errorf("%w: p256dh is %d bytes, want %d", ErrPushBadKey, len(k.P256DH), pushKeySize)
	}
	pub, err := ecdh.P256().NewPublicKey(k.P256DH)
	if err != nil {
		return nil, fmt.Errorf("%w: p256dh is not an uncompressed P-256 point", ErrPushBadKey)
	}
	if len(k.Auth) != pushAuthSize {
		return nil, fmt.Errorf("%w: auth is %d bytes, want %d", ErrPushBadKey, len(k.Auth), pushAuthSize)
	}
	return pub, nil
}

// SealedSize is the exact size of the body Seal returns for a plaintext of plaintextLen
// bytes: the 86-byte header, the plaintext, one padding delimiter and the 16-byte tag.
// Compare it with MaxPushPayload before sealing to choose a wake-only push instead.
func SealedSize(plaintextLen int) int { return pushOverhead + plaintextLen }

// Seal encrypts plaintext for the terminal with a fresh salt and fresh ephemeral key; output
// is the RFC 8188 aes128gcm body (header salt(16)|rs(4, BE)|idlen(1)|keyid(=65-byte ephemeral
// public key) then one record). It refuses a plaintext over MaxPushPlaintext bytes but not a
// body over MaxPushPayload: the caller decides (see SealedSize).
func Seal(keys PushKeys, plaintext []byte) ([]byte, error) {
	var salt [pushSaltSize]byte
	rand.Read(salt[:]) // never fails
	ephemeral, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("web push: ephemeral key: %w", err)
	}
	return SealWith(keys, plaintext, salt[:], ephemeral)
}

// SealWith is Seal with an explicit salt (16 bytes) and ephemeral P-256 private key, for test
// vectors. Reusing either across messages is insecure; production code calls Seal.
func SealWith(keys PushKeys, plaintext []byte, salt []byte, ephemeral *ecdh.PrivateKey) ([]byte, error) {
	if len(plaintext) > MaxPushPlaintext {
		return nil, fmt.Errorf("%w: plaintext is %d bytes, limit %d", ErrPushTooLarge, len(plaintext), MaxPushPlaintext)
	}
	if len(salt) != pushSaltSize {
		return nil, fmt.Errorf("%w: salt is %d bytes, want %d", ErrPushBadHeader, len(salt), pushSaltSize)
	}
	if ephemeral == nil || ephemeral.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("%w: ephemeral key must be P-256", ErrPushBadKey)
	}
	uaPublic, err := keys.publicKey()
	if err != nil {
		return nil, err
	}
	secret, err := ephemeral.ECDH(uaPublic)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPushBadKey, err)
	}
	asPublic := ephemeral.PublicKey().Bytes()
	ks, err := pushKeySchedule(secret, keys.Auth, keys.P256DH, asPublic, salt)
	if err != nil {
		return nil, err
	}
	aead, err := pushAEAD(ks.cek[:])
	if err != nil {
		return nil, err
	}

	record := len(plaintext) + pushMinRecord
	rs := max(pushDefaultRS, record)
	out := make([]byte, pushHeaderSize, SealedSize(len(plaintext)))
	copy(out, salt)
	binary.BigEndian.PutUint32(out[pushSaltSize:], uint32(rs))
	out[pushSaltSize+4] = pushKeySize
	copy(out[pushSaltSize+5:], asPublic)
	out = append(out, plaintext...)
	out = append(out, pushDelimLast)
	// Encrypt in place: dst and plaintext overlap exactly, which cipher.AEAD allows.
	return aead.Seal(out[:pushHeaderSize], ks.nonce[:], out[pushHeaderSize:], nil), nil
}

// Open is what a terminal runs: it decrypts a body sealed for its private key priv and auth
// secret auth, enforcing RFC 8188 for a single record: a complete header, idlen 65 with a
// valid P-256 keyid, rs >= 18, exactly one record no longer than rs, an authentic record,
// and a last non-zero plaintext byte of 0x02 (padding zeros after it are removed). The
// returned plaintext is freshly allocated; body is not modified.
func Open(priv *ecdh.PrivateKey, auth []byte, body []byte) ([]byte, error) {
	if priv == nil || priv.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("%w: private key must be P-256", ErrPushBadKey)
	}
	if len(auth) != pushAuthSize {
		return nil, fmt.Errorf("%w: auth is %d bytes, want %d", ErrPushBadKey, len(auth), pushAuthSize)
	}
	if len(body) < pushSaltSize+5 {
		return nil, fmt.Errorf("%w: %d bytes, header needs %d", ErrPushTruncated, len(body), pushHeaderSize)
	}
	salt := body[:pushSaltSize]
	rs := binary.BigEndian.Uint32(body[pushSaltSize:])
	if rs < pushMinRS {
		return nil, fmt.Errorf("%w: rs %d below %d", ErrPushBadHeader, rs, pushMinRS)
	}
	if idlen := body[pushSaltSize+4]; idlen != pushKeySize {
		return nil, fmt.Errorf("%w: idlen %d, want %d", ErrPushBadHeader, idlen, pushKeySize)
	}
	if len(body) < pushHeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, header needs %d", ErrPushTruncated, len(body), pushHeaderSize)
	}
	keyID := body[pushSaltSize+5 : pushHeaderSize]
	asPublic, err := ecdh.P256().NewPublicKey(keyID)
	if err != nil {
		return nil, fmt.Errorf("%w: keyid is not an uncompressed P-256 point", ErrPushBadKey)
	}
	record := body[pushHeaderSize:]
	switch {
	case len(record) < pushMinRecord:
		return nil, fmt.Errorf("%w: record is %d bytes, minimum %d", ErrPushTruncated, len(record), pushMinRecord)
	case len(record) > pushMaxRecord:
		return nil, fmt.Errorf("%w: record is %d bytes, limit %d", ErrPushTooLarge, len(record), pushMaxRecord)
	case uint64(len(record)) > uint64(rs):
		return nil, fmt.Errorf("%w: %d bytes after the header, rs %d", ErrPushTrailingData, len(record), rs)
	}

	secret, err := priv.ECDH(asPublic)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPushBadKey, err)
	}
	ks, err := pushKeySchedule(secret, auth, priv.PublicKey().Bytes(), keyID, salt)
	if err != nil {
		return nil, err
	}
	aead, err := pushAEAD(ks.cek[:])
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(make([]byte, 0, len(record)-pushTagSize), ks.nonce[:], record, nil)
	if err != nil {
		return nil, ErrPushDecrypt
	}
	return pushUnpad(plain)
}

// pushUnpad strips RFC 8188 padding from the plaintext of the last (here: only) record:
// data | 0x02 | zero or more 0x00.
func pushUnpad(plain []byte) ([]byte, error) {
	for i := len(plain) - 1; i >= 0; i-- {
		switch plain[i] {
		case 0:
			continue
		case pushDelimLast:
			return plain[:i], nil
		default:
			return nil, fmt.Errorf("%w: delimiter 0x%02x, want 0x02", ErrPushPadding, plain[i])
		}
	}
	return nil, fmt.Errorf("%w: no delimiter", ErrPushPadding)
}

// pushKeys is the output of the key schedule, with the intermediates the RFC 8291 Appendix A
// vectors pin down.
type pushKeys struct {
	prkKey  [pushSecretSize]byte
	keyInfo [pushKeyInfoSize]byte
	ikm     [pushSecretSize]byte
	prk     [pushSecretSize]byte
	cek     [pushCEKSize]byte
	nonce   [pushNonceSize]byte
}

// pushKeySchedule derives the content encryption key and nonce from the ECDH secret, the
// terminal's auth secret, both public keys (ua: terminal, as: sender) and the salt.
func pushKeySchedule(ecdhSecret, auth, uaPublic, asPublic, salt []byte) (*pushKeys, error) {
	if len(ecdhSecret) != pushECDHSecretSize || len(auth) != pushAuthSize ||
		len(uaPublic) != pushKeySize || len(asPublic) != pushKeySize || len(salt) != pushSaltSize {
		return nil, fmt.Errorf("%w: key schedule input sizes", ErrPushBadKey)
	}
	ks := new(pushKeys)
	n := copy(ks.keyInfo[:], pushKeyInfoLabel)
	n += copy(ks.keyInfo[n:], uaPublic)
	copy(ks.keyInfo[n:], asPublic)

	out, err := hkdf.Extract(sha256.New, ecdhSecret, auth)
	if err != nil {
		return nil, fmt.Errorf("web push: key schedule: %w", err)
	}
	copy(ks.prkKey[:], out)
	if out, err = hkdf.Expand(sha256.New, ks.prkKey[:], string(ks.keyInfo[:]), pushSecretSize); err != nil {
		return nil, fmt.Errorf("web push: key schedule: %w", err)
	}
	copy(ks.ikm[:], out)
	if out, err = hkdf.Extract(sha256.New, ks.ikm[:], salt); err != nil {
		return nil, fmt.Errorf("web push: key schedule: %w", err)
	}
	copy(ks.prk[:], out)
	if out, err = hkdf.Expand(sha256.New, ks.prk[:], pushCEKInfo, pushCEKSize); err != nil {
		return nil, fmt.Errorf("web push: key schedule: %w", err)
	}
	copy(ks.cek[:], out)
	if out, err = hkdf.Expand(sha256.New, ks.prk[:], pushNonceInfo, pushNonceSize); err != nil {
		return nil, fmt.Errorf("web push: key schedule: %w", err)
	}
	copy(ks.nonce[:], out)
	return ks, nil
}

func pushAEAD(cek []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, fmt.Errorf("web push: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("web push: %w", err)
	}
	return aead, nil
}
