package protocol

import "testing"

func benchText() []byte {
	data, _ := TextMessage{Source: 262000101, Destination: 262000201, Text: "73 de DL1ABC, QSL via bureau, see you on TG 91 tonight"}.Encode()
	return Datagram{Type: TypeMessageText, Number: 42, Data: data}.MustEncode()
}

func BenchmarkDecodeHeader(b *testing.B) {
	msg := benchText()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := Decode(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeText(b *testing.B) {
	msg := benchText()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		d, err := Decode(msg)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeTextMessage(d.Data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRouteHeader(b *testing.B) {
	msg := benchText()
	b.ReportAllocs()
	for b.Loop() {
		d, _ := Decode(msg)
		if _, _, _, err := TextMessageHeader(d.Data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeAppend(b *testing.B) {
	d, _ := Decode(benchText())
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(d.Size()))
	for b.Loop() {
		var err error
		if buf, err = d.AppendTo(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeText(b *testing.B) {
	m := TextMessage{Source: 262000101, Destination: 262000201, Text: "73 de DL1ABC, QSL via bureau, see you on TG 91 tonight"}
	b.ReportAllocs()
	for b.Loop() {
		data, err := m.Encode()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := (Datagram{Type: TypeMessageText, Data: data}).Encode(); err != nil {
			b.Fatal(err)
		}
	}
}
