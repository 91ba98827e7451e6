package registry

import "encoding/binary"

// Key prefixes; the layout is described in the package comment.
const (
	prefixTerminal byte = 't'
	prefixUser     byte = 'u'
	prefixEntry    byte = 'o'
	prefixExpiry   byte = 'e'
	prefixSeq      byte = 's'
	prefixAttach   byte = 'a'
	prefixBlob     byte = 'b'
	prefixBlobExp  byte = 'x'
)

// Key lengths.
const (
	terminalKeyLen = 1 + 4
	userKeyLen     = 1 + 4 + 4
	entryKeyLen    = 1 + 4 + 8
	expiryKeyLen   = 1 + 8 + 4 + 8
	seqKeyLen      = 1 + 4
	attachKeyLen   = 1 + 4
)

func terminalKey(id uint32) []byte {
	k := make([]byte, terminalKeyLen)
	k[0] = prefixTerminal
	binary.BigEndian.PutUint32(k[1:], id)
	return k
}

// userPrefix is the common prefix of the user index keys of user.
func userPrefix(user uint32) []byte {
	k := make([]byte, 1+4, userKeyLen)
	k[0] = prefixUser
	binary.BigEndian.PutUint32(k[1:], user)
	return k
}

func userKey(user, id uint32) []byte {
	return binary.BigEndian.AppendUint32(userPrefix(user), id)
}

// entryPrefix is the common prefix of the outbox entries of terminal.
func entryPrefix(terminal uint32) []byte {
	k := make([]byte, 1+4, entryKeyLen)
	k[0] = prefixEntry
	binary.BigEndian.PutUint32(k[1:], terminal)
	return k
}

func entryKey(terminal uint32, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(entryPrefix(terminal), seq)
}

// parseEntryKey returns the sequence number of an entry key.
func parseEntryKey(k []byte) (terminal uint32, seq uint64, ok bool) {
	if len(k) != entryKeyLen || k[0] != prefixEntry {
		return 0, 0, false
	}
	return binary.BigEndian.Uint32(k[1:]), binary.BigEndian.Uint64(k[5:]), true
}

// expiryStamp maps Unix nanoseconds to a uint64 whose big-endian bytes sort
// like the signed value (the sign bit is flipped).
func expiryStamp(unixNano int64) uint64 { return uint64(unixNano) ^ (1 << 63) }

func expiryKey(expires int64, terminal uint32, seq uint64) []byte {
	k := make([]byte, 1, expiryKeyLen)
	k[0] = prefixExpiry
	k = binary.BigEndian.AppendUint64(k, expiryStamp(expires))
	k = binary.BigEndian.AppendUint32(k, terminal)
	return binary.BigEndian.AppendUint64(k, seq)
}

func parseExpiryKey(k []byte) (expires int64, terminal uint32, seq uint64, ok bool) {
	if len(k) != expiryKeyLen || k[0] != prefixExpiry {
		return 0, 0, 0, false
	}
	expires = int64(binary.BigEndian.Uint64(k[1:]) ^ (1 << 63))
	return expires, binary.BigEndian.Uint32(k[9:]), binary.BigEndian.Uint64(k[13:]), true
}

func seqKey(terminal uint32) []byte {
	k := make([]byte, seqKeyLen)
	k[0] = prefixSeq
	binary.BigEndian.PutUint32(k[1:], terminal)
	return k
}

func attachKey(terminal uint32) []byte {
	k := make([]byte, attachKeyLen)
	k[0] = prefixAttach
	binary.BigEndian.PutUint32(k[1:], terminal)
	return k
}

func blobKey(key string) []byte {
	k := make([]byte, 1, 1+len(key))
	k[0] = prefixBlob
	return append(k, key...)
}

func blobExpiryKey(expires int64, key string) []byte {
	k := make([]byte, 1, 1+8+len(key))
	k[0] = prefixBlobExp
	k = binary.BigEndian.AppendUint64(k, expiryStamp(expires))
	return append(k, key...)
}

func parseBlobExpiryKey(k []byte) (expires int64, key string, ok bool) {
	if len(k) < 1+8+1 || k[0] != prefixBlobExp {
		return 0, "", false
	}
	return int64(binary.BigEndian.Uint64(k[1:]) ^ (1 << 63)), string(k[9:]), true
}
