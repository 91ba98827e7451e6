package broker

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rewind-broker/rewind/protocol"
)

// A terminal may send its hello in the same TCP segment as the upgrade request, before the 101
// arrives. Those bytes sit in net/http's reader at hijack time and must reach the session
// through the smaller buffers the broker swaps in (they once did not: the handshake failed
// with a WebSocket protocol error).
func TestHelloPipelinedWithUpgrade(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(2620001, "secret")
	conn, err := net.Dial("tcp", h.ws.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	data, err := protocol.VersionData{Number: 2620001, Service: protocol.ServiceTerminal, Description: "pipelined"}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	hello := protocol.Datagram{Type: protocol.TypeKeepAlive, Data: data}.MustEncode()
	req := "GET /rewind HTTP/1.1\r\nHost: " + h.ws.Listener.Addr().String() + "\r\n" +
		"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := conn.Write(append([]byte(req), clientFrame(t, hello)...)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade answered %s", resp.Status)
	}
	msg := readServerFrame(t, br)
	d, err := protocol.Decode(msg)
	if err != nil {
		t.Fatal(err)
	}
	if d.Type != protocol.TypeChallenge {
		t.Fatalf("after a pipelined hello the broker sent %v, want CHALLENGE", d.Type)
	}
}

// clientFrame frames payload as one masked binary WebSocket message (RFC 6455 §5.2).
func clientFrame(t *testing.T, payload []byte) []byte {
	t.Helper()
	if len(payload) > 125 {
		t.Fatalf("clientFrame handles short payloads only, got %d bytes", len(payload))
	}
	var mask [4]byte
	rand.Read(mask[:])
	f := []byte{0x82, 0x80 | byte(len(payload))}
	f = append(f, mask[:]...)
	for i, b := range payload {
		f = append(f, b^mask[i%4])
	}
	return f
}

// readServerFrame reads one unmasked, unfragmented binary message.
func readServerFrame(t *testing.T, br *bufio.Reader) []byte {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatal(err)
	}
	if h[0] != 0x82 {
		t.Fatalf("frame starts %#x, want a final binary frame", h[0])
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(br, ext[:]); err != nil {
			t.Fatal(err)
		}
		n = int(binary.BigEndian.Uint16(ext[:]))
	case 127:
		t.Fatal("unexpectedly long frame")
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(br, msg); err != nil {
		t.Fatal(err)
	}
	return msg
}

// Datagrams larger than both connection buffers pass through whole in both directions: a text
// at the size limit, sent and delivered.
func TestLargeDatagramThroughSmallBuffers(t *testing.T) {
	h := newHarness(t)
	h.addTerminal(2620001, "a")
	h.addTerminal(2620002, "b")
	a := h.dial(2620001, "a")
	b := h.dial(2620002, "b")
	text := strings.Repeat("x", 3*connReadBuffer)
	if err := a.SendText(ctx(t), 2620002, text); err != nil {
		t.Fatal(err)
	}
	got, _, err := b.RecvText(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if got.Text != text {
		t.Fatalf("received %d characters, want %d", len(got.Text), len(text))
	}
}
