package protocol

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
)

// Payload layouts (little-endian, packed), as in Rewind:
//
//	VersionData     u32 number | u8 service | char description[]           (5 + n)
//	TextMessage     u32 reserved | u32 source | u32 destination |
//	                u16 option | u16 length | UTF-16LE text[length]        (16 + n)
//	TextStatus      u32 reserved | u32 source | u32 destination | u8 status (13)
//	LocationRequest u32 reserved | u32 type | u32 interval                  (12)
//	LocationReport  u32 reserved | u32 format | u16 length | data[length]   (10 + n)
//	Subscription    u32 type | u32 number                                   (8)
//	Redirection     u16 family | u16 port | u8 address[16]                  (20)
//	Wakeup          u32 pending                                             (4)
//	DeliveryAck     u32 sequence                                            (4)
//	BrokerError     u16 code | u16 offending type | UTF-8 reason            (4 + n)
//
// Decoders accept trailing bytes only where the layout ends in a variable part; a fixed layout
// with extra or missing bytes is malformed.

func malformed(what string, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrMalformed, what, fmt.Sprintf(format, args...))
}

func fixedSize(what string, data []byte, n int) error {
	if len(data) != n {
		return malformed(what, "%d bytes, want %d", len(data), n)
	}
	return nil
}

// VersionData is the terminal's hello, carried by its first KEEP_ALIVE.
type VersionData struct {
	Number      uint32 // terminal id
	Service     uint8  // ServiceTerminal
	Description string // free text (e.g. app name and version); trailing NULs are dropped
}

// MaxDescription bounds VersionData.Description.
const MaxDescription = 256

// Encode returns the data bytes of v.
func (v VersionData) Encode() ([]byte, error) {
	if len(v.Description) > MaxDescription {
		return nil, fmt.Errorf("%w: description of %d bytes, limit %d", ErrTooLarge, len(v.Description), MaxDescription)
	}
	b := make([]byte, 5, 5+len(v.Description))
	binary.LittleEndian.PutUint32(b, v.Number)
	b[4] = v.Service
	return append(b, v.Description...), nil
}

// DecodeVersionData parses KEEP_ALIVE hello data.
func DecodeVersionData(data []byte) (VersionData, error) {
	if len(data) < 5 {
		return VersionData{}, malformed("version data", "%d bytes, want at least 5", len(data))
	}
	desc := data[5:]
	if len(desc) > MaxDescription {
		return VersionData{}, malformed("version data", "description of %d bytes, limit %d", len(desc), MaxDescription)
	}
	return VersionData{
		Number:      binary.LittleEndian.Uint32(data),
		Service:     data[4],
		Description: strings.TrimRight(string(desc), "\x00"),
	}, nil
}

// TextMessage is MESSAGE_TEXT data.
type TextMessage struct {
	Source      uint32
	Destination uint32 // terminal id, DMR user id, or talkgroup when Option is OptionGroup
	Option      uint16 // OptionPrivate or OptionGroup
	Text        string // UTF-8 here, UTF-16LE on the wire
}

const textHeader = 16

// MaxTextBytes is the largest UTF-16LE text a TextMessage can carry on the wire.
const MaxTextBytes = MaxDataSize - textHeader

// Encode returns the data bytes of m.
func (m TextMessage) Encode() ([]byte, error) {
	b := make([]byte, textHeader, textHeader+2*len(m.Text))
	binary.LittleEndian.PutUint32(b[4:], m.Source)
	binary.LittleEndian.PutUint32(b[8:], m.Destination)
	binary.LittleEndian.PutUint16(b[12:], m.Option)
	b, err := AppendUTF16LE(b, m.Text)
	if err != nil {
		return nil, err
	}
	n := len(b) - textHeader
	if n > MaxTextBytes {
		return nil, fmt.Errorf("%w: text of %d UTF-16 bytes, limit %d", ErrTooLarge, n, MaxTextBytes)
	}
	binary.LittleEndian.PutUint16(b[14:], uint16(n))
	return b, nil
}

// DecodeTextMessage parses MESSAGE_TEXT data. The length field must match the remaining bytes.
func DecodeTextMessage(data []byte) (TextMessage, error) {
	if len(data) < textHeader {
		return TextMessage{}, malformed("text message", "%d bytes, want at least %d", len(data), textHeader)
	}
	n := int(binary.LittleEndian.Uint16(data[14:]))
	if n != len(data)-textHeader {
		return TextMessage{}, malformed("text message", "text length %d, %d bytes present", n, len(data)-textHeader)
	}
	text, err := DecodeUTF16LE(data[textHeader:])
	if err != nil {
		return TextMessage{}, err
	}
	return TextMessage{
		Source:      binary.LittleEndian.Uint32(data[4:]),
		Destination: binary.LittleEndian.Uint32(data[8:]),
		Option:      binary.LittleEndian.Uint16(data[12:]),
		Text:        text,
	}, nil
}

// TextMessageHeader reads source, destination and option without decoding the text. It is the
// router's fast path; the text itself is forwarded as bytes.
func TextMessageHeader(data []byte) (source, destination uint32, option uint16, err error) {
	if len(data) < textHeader {
		return 0, 0, 0, malformed("text message", "%d bytes, want at least %d", len(data), textHeader)
	}
	if n := int(binary.LittleEndian.Uint16(data[14:])); n != len(data)-textHeader || n%2 != 0 {
		return 0, 0, 0, malformed("text message", "text length %d, %d bytes present", n, len(data)-textHeader)
	}
	return binary.LittleEndian.Uint32(data[4:]), binary.LittleEndian.Uint32(data[8:]), binary.LittleEndian.Uint16(data[12:]), nil
}

// TextStatus is MESSAGE_STATUS data: the recipient's report about a text it received.
type TextStatus struct {
	Source      uint32 // the reporting terminal (the text's recipient)
	Destination uint32 // the text's sender, to whom the status is routed
	Status      uint8
}

// Text status values.
const (
	StatusDelivered uint8 = 0 // the recipient received the text
	StatusRead      uint8 = 1 // the user saw it
	StatusFailed    uint8 = 2 // the recipient could not process it
)

// Encode returns the data bytes of s.
func (s TextStatus) Encode() []byte {
	b := make([]byte, 13)
	binary.LittleEndian.PutUint32(b[4:], s.Source)
	binary.LittleEndian.PutUint32(b[8:], s.Destination)
	b[12] = s.Status
	return b
}

// DecodeTextStatus parses MESSAGE_STATUS data.
func DecodeTextStatus(data []byte) (TextStatus, error) {
	if err := fixedSize("text status", data, 13); err != nil {
		return TextStatus{}, err
	}
	return TextStatus{
		Source:      binary.LittleEndian.Uint32(data[4:]),
		Destination: binary.LittleEndian.Uint32(data[8:]),
		Status:      data[12],
	}, nil
}

// LocationRequest is LOCATION_REQUEST data. Rewind carries no addressing in it: over the broker
// the requested terminal is the datagram's destination given by the routing layer, which for
// terminal-originated requests is the Destination field of this broker's extended form
// (LocationRequest followed by u32 source | u32 destination, 20 bytes). The 12-byte Rewind form
// is accepted from the publish API, where the destination is in the URL.
type LocationRequest struct {
	Type        uint32
	Interval    uint32 // seconds; 0 = once
	Source      uint32 // extended form only
	Destination uint32 // extended form only
}

// Encode returns the extended (20-byte) form when Source or Destination is set, else the
// 12-byte Rewind form.
func (r LocationRequest) Encode() []byte {
	n := 12
	if r.Source != 0 || r.Destination != 0 {
		n = 20
	}
	b := make([]byte, n)
	binary.LittleEndian.PutUint32(b[4:], r.Type)
	binary.LittleEndian.PutUint32(b[8:], r.Interval)
	if n == 20 {
		binary.LittleEndian.PutUint32(b[12:], r.Source)
		binary.LittleEndian.PutUint32(b[16:], r.Destination)
	}
	return b
}

// DecodeLocationRequest parses LOCATION_REQUEST data in either form.
func DecodeLocationRequest(data []byte) (LocationRequest, error) {
	if len(data) != 12 && len(data) != 20 {
		return LocationRequest{}, malformed("location request", "%d bytes, want 12 or 20", len(data))
	}
	r := LocationRequest{Type: binary.LittleEndian.Uint32(data[4:]), Interval: binary.LittleEndian.Uint32(data[8:])}
	if len(data) == 20 {
		r.Source = binary.LittleEndian.Uint32(data[12:])
		r.Destination = binary.LittleEndian.Uint32(data[16:])
	}
	return r, nil
}

// LocationReport is LOCATION_REPORT data. Like LocationRequest it has an extended form over the
// broker: the Rewind part followed by u32 source | u32 destination (the requester).
type LocationReport struct {
	Format      uint32 // 0 = NMEA
	Data        []byte // aliases the decoded message
	Source      uint32
	Destination uint32
}

// LocationNMEA is the NMEA report format.
const LocationNMEA uint32 = 0

// Encode returns the data bytes of r (always the extended form: reports are routed).
func (r LocationReport) Encode() ([]byte, error) {
	if len(r.Data) > MaxDataSize-18 {
		return nil, fmt.Errorf("%w: location data of %d bytes", ErrTooLarge, len(r.Data))
	}
	b := make([]byte, 10, 18+len(r.Data))
	binary.LittleEndian.PutUint32(b[4:], r.Format)
	binary.LittleEndian.PutUint16(b[8:], uint16(len(r.Data)))
	b = append(b, r.Data...)
	b = binary.LittleEndian.AppendUint32(b, r.Source)
	return binary.LittleEndian.AppendUint32(b, r.Destination), nil
}

// DecodeLocationReport parses LOCATION_REPORT data (extended form).
func DecodeLocationReport(data []byte) (LocationReport, error) {
	if len(data) < 18 {
		return LocationReport{}, malformed("location report", "%d bytes, want at least 18", len(data))
	}
	n := int(binary.LittleEndian.Uint16(data[8:]))
	if n != len(data)-18 {
		return LocationReport{}, malformed("location report", "data length %d, %d bytes present", n, len(data)-18)
	}
	return LocationReport{
		Format:      binary.LittleEndian.Uint32(data[4:]),
		Data:        data[10 : 10+n : 10+n],
		Source:      binary.LittleEndian.Uint32(data[10+n:]),
		Destination: binary.LittleEndian.Uint32(data[14+n:]),
	}, nil
}

// Subscription is SUBSCRIPTION and CANCELLING data.
type Subscription struct {
	Type   uint32 // SubscriptionGroup or SubscriptionPrivate
	Number uint32 // talkgroup or id
}

// Encode returns the data bytes of s.
func (s Subscription) Encode() []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint32(b, s.Type)
	binary.LittleEndian.PutUint32(b[4:], s.Number)
	return b
}

// DecodeSubscription parses SUBSCRIPTION or CANCELLING data.
func DecodeSubscription(data []byte) (Subscription, error) {
	if err := fixedSize("subscription", data, 8); err != nil {
		return Subscription{}, err
	}
	return Subscription{Type: binary.LittleEndian.Uint32(data), Number: binary.LittleEndian.Uint32(data[4:])}, nil
}

// Redirection is REDIRECTION data. Family AFUnspec with zero port and address means "reconnect
// to the same URL after a short random delay".
type Redirection struct {
	Family  uint16 // AFUnspec, AFInet (address in the first 4 bytes) or AFInet6
	Port    uint16
	Address [16]byte
}

// Address families for Redirection.
const (
	AFUnspec uint16 = 0
	AFInet   uint16 = 2
	AFInet6  uint16 = 10
)

// Encode returns the data bytes of r.
func (r Redirection) Encode() []byte {
	b := make([]byte, 4, 20)
	binary.LittleEndian.PutUint16(b, r.Family)
	binary.LittleEndian.PutUint16(b[2:], r.Port)
	return append(b, r.Address[:]...)
}

// DecodeRedirection parses REDIRECTION data.
func DecodeRedirection(data []byte) (Redirection, error) {
	if err := fixedSize("redirection", data, 20); err != nil {
		return Redirection{}, err
	}
	r := Redirection{Family: binary.LittleEndian.Uint16(data), Port: binary.LittleEndian.Uint16(data[2:])}
	copy(r.Address[:], data[4:])
	return r, nil
}

// EncodeU32 returns the 4-byte data of a Wakeup (pending count) or DeliveryAck (sequence).
func EncodeU32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

// DecodeU32 parses the 4-byte data of a Wakeup or DeliveryAck.
func DecodeU32(what string, data []byte) (uint32, error) {
	if err := fixedSize(what, data, 4); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(data), nil
}

// BrokerError is BROKER_ERROR data. Codes follow HTTP meanings.
type BrokerError struct {
	Code      uint16
	Offending Type // the type of the datagram that caused it, 0 if none
	Reason    string
}

// Broker error codes.
const (
	CodeMalformed    uint16 = 400
	CodeUnauthorized uint16 = 401
	CodeForbidden    uint16 = 403
	CodeNotFound     uint16 = 404
	CodeReplaced     uint16 = 409
	CodeTooLarge     uint16 = 413
	CodeRateLimited  uint16 = 429
	CodeUnavailable  uint16 = 503
	maxReasonBytes          = 512
)

// Encode returns the data bytes of e. Reasons longer than 512 bytes are cut at a rune boundary.
func (e BrokerError) Encode() []byte {
	reason := e.Reason
	if len(reason) > maxReasonBytes {
		reason = strings.ToValidUTF8(reason[:maxReasonBytes], "")
	}
	b := make([]byte, 4, 4+len(reason))
	binary.LittleEndian.PutUint16(b, e.Code)
	binary.LittleEndian.PutUint16(b[2:], uint16(e.Offending))
	return append(b, reason...)
}

// DecodeBrokerError parses BROKER_ERROR data.
func DecodeBrokerError(data []byte) (BrokerError, error) {
	if len(data) < 4 {
		return BrokerError{}, malformed("broker error", "%d bytes, want at least 4", len(data))
	}
	return BrokerError{
		Code:      binary.LittleEndian.Uint16(data),
		Offending: Type(binary.LittleEndian.Uint16(data[2:])),
		Reason:    strings.ToValidUTF8(string(data[4:]), "\uFFFD"),
	}, nil
}

// Error makes BrokerError usable as an error on the client side.
func (e BrokerError) Error() string {
	return fmt.Sprintf("broker error %d (%s): %s", e.Code, e.Offending, e.Reason)
}

// AuthDigest computes AUTHENTICATION data: SHA-256(challenge ‖ password).
func AuthDigest(challenge []byte, password string) [32]byte {
	h := sha256.New()
	h.Write(challenge)
	h.Write([]byte(password))
	var out [32]byte
	h.Sum(out[:0])
	return out
}
