package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Decoding errors. Every error returned by Decode and the payload decoders wraps ErrMalformed.
var (
	ErrMalformed = errors.New("malformed datagram")
	ErrShort     = fmt.Errorf("%w: shorter than the 18-byte header", ErrMalformed)
	ErrSign      = fmt.Errorf("%w: signature is not REWIND01", ErrMalformed)
	ErrLength    = fmt.Errorf("%w: length field disagrees with message size", ErrMalformed)
	ErrTooLarge  = errors.New("datagram too large")
)

// Header is the fixed part of a datagram.
type Header struct {
	Type   Type
	Flags  Flags
	Number uint32
	Length uint16
}

// ParseHeader reads the header at the start of b. It checks the signature and that b holds at
// least the header; it does not compare Length with len(b) (Decode does). It never allocates.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrShort
	}
	if string(b[:8]) != Sign {
		return Header{}, ErrSign
	}
	return Header{
		Type:   Type(binary.LittleEndian.Uint16(b[8:])),
		Flags:  Flags(binary.LittleEndian.Uint16(b[10:])),
		Number: binary.LittleEndian.Uint32(b[12:]),
		Length: binary.LittleEndian.Uint16(b[16:]),
	}, nil
}

// Datagram is one Rewind datagram.
type Datagram struct {
	Type   Type
	Flags  Flags
	Number uint32
	// Data is the payload. Decode aliases the message it was given.
	Data []byte
}

// Decode parses one whole message. The message must be exactly header + Length bytes.
// Data aliases msg; copy it to keep it beyond msg's lifetime. Decode does not allocate.
func Decode(msg []byte) (Datagram, error) {
	h, err := ParseHeader(msg)
	if err != nil {
		return Datagram{}, err
	}
	if int(h.Length) != len(msg)-HeaderSize {
		return Datagram{}, ErrLength
	}
	return Datagram{Type: h.Type, Flags: h.Flags, Number: h.Number, Data: msg[HeaderSize:len(msg):len(msg)]}, nil
}

// Size is the encoded size of d.
func (d Datagram) Size() int { return HeaderSize + len(d.Data) }

// AppendTo appends the encoding of d to dst. It fails only when Data exceeds MaxDataSize.
func (d Datagram) AppendTo(dst []byte) ([]byte, error) {
	if len(d.Data) > MaxDataSize {
		return dst, fmt.Errorf("%w: %d bytes of data, limit %d", ErrTooLarge, len(d.Data), MaxDataSize)
	}
	dst = append(dst, Sign...)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(d.Type))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(d.Flags))
	dst = binary.LittleEndian.AppendUint32(dst, d.Number)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(d.Data)))
	return append(dst, d.Data...), nil
}

// Encode returns the encoding of d in a new slice.
func (d Datagram) Encode() ([]byte, error) {
	return d.AppendTo(make([]byte, 0, d.Size()))
}

// MustEncode is Encode for datagrams whose data is known to fit (built by this package's payload
// encoders from bounded values). It panics on a programming error, never on peer input.
func (d Datagram) MustEncode() []byte {
	b, err := d.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

// String summarises d for logs without its data.
func (d Datagram) String() string {
	return fmt.Sprintf("%s flags=%d number=%d len=%d", d.Type, d.Flags, d.Number, len(d.Data))
}
