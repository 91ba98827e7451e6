package protocol

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecode feeds arbitrary messages to Decode and to every payload decoder. Properties: no
// panic; every error wraps ErrMalformed; a decoded datagram re-encodes to the same bytes; a
// decoded payload re-encodes to something that decodes to the same value.
func FuzzDecode(f *testing.F) {
	text, _ := TextMessage{Source: 262000101, Destination: 262000201, Text: "hello 📻"}.Encode()
	report, _ := LocationReport{Data: []byte("$GPGGA"), Source: 1, Destination: 2}.Encode()
	version, _ := VersionData{Number: 262000101, Service: ServiceTerminal, Description: "t"}.Encode()
	for _, d := range []Datagram{
		{Type: TypeKeepAlive, Data: version},
		{Type: TypeChallenge, Data: make([]byte, 16)},
		{Type: TypeMessageText, Data: text},
		{Type: TypeMessageStatus, Data: TextStatus{Source: 1, Destination: 2}.Encode()},
		{Type: TypeLocationRequest, Data: LocationRequest{Type: 1, Source: 1, Destination: 2}.Encode()},
		{Type: TypeLocationReport, Data: report},
		{Type: TypeSubscription, Data: Subscription{Type: SubscriptionGroup, Number: 91}.Encode()},
		{Type: TypeRedirection, Data: Redirection{}.Encode()},
		{Type: TypeDeliveryAck, Flags: FlagBuffering, Data: EncodeU32(7)},
		{Type: TypeBrokerError, Data: BrokerError{Code: 400, Reason: "x"}.Encode()},
	} {
		f.Add(d.MustEncode())
	}
	f.Add([]byte("REWIND01"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		d, err := Decode(msg)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			d = Datagram{Data: msg} // still exercise the payload decoders on raw bytes
		} else {
			again, err := d.Encode()
			if err != nil || !bytes.Equal(again, msg) {
				t.Fatalf("re-encode differs: %x vs %x (%v)", again, msg, err)
			}
		}
		checkPayloads(t, d.Data)
	})
}

func checkPayloads(t *testing.T, data []byte) {
	mustMalformed := func(err error) {
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error does not wrap ErrMalformed: %v", err)
		}
	}
	if m, err := DecodeTextMessage(data); err == nil {
		b, err := m.Encode()
		if err != nil {
			t.Fatalf("decoded text does not encode: %v", err)
		}
		if m2, err := DecodeTextMessage(b); err != nil || m2 != m {
			t.Fatalf("text round trip: %+v vs %+v (%v)", m2, m, err)
		}
	} else {
		mustMalformed(err)
	}
	_, _, _, err := TextMessageHeader(data)
	mustMalformed(err)
	if v, err := DecodeVersionData(data); err == nil {
		if _, err := v.Encode(); err != nil {
			t.Fatalf("decoded version does not encode: %v", err)
		}
	} else {
		mustMalformed(err)
	}
	_, err = DecodeTextStatus(data)
	mustMalformed(err)
	_, err = DecodeLocationRequest(data)
	mustMalformed(err)
	if r, err := DecodeLocationReport(data); err == nil {
		b, err := r.Encode()
		if err != nil {
			t.Fatalf("decoded location report does not encode: %v", err)
		}
		// The reserved field is not kept; everything else must survive.
		if r2, err := DecodeLocationReport(b); err != nil || !bytes.Equal(b[4:], data[4:]) || r2.Source != r.Source || r2.Destination != r.Destination {
			t.Fatalf("location report round trip: %x vs %x (%v)", b, data, err)
		}
	} else {
		mustMalformed(err)
	}
	_, err = DecodeSubscription(data)
	mustMalformed(err)
	_, err = DecodeRedirection(data)
	mustMalformed(err)
	_, err = DecodeU32("ack", data)
	mustMalformed(err)
	_, err = DecodeBrokerError(data)
	mustMalformed(err)
	_, err = DecodeUTF16LE(data)
	mustMalformed(err)
	// The checker and the decoder agree on every input.
	if cerr := CheckUTF16LE(data); (cerr == nil) != (err == nil) {
		t.Fatalf("CheckUTF16LE %v, DecodeUTF16LE %v", cerr, err)
	}
}
