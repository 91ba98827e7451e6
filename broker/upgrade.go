package broker

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Buffer sizes of an upgraded connection. net/http hands a hijacked connection over with the
// 4 KB reader and 4 KB writer it used for the request, and coder/websocket keeps both for the
// connection's life: 8 KB of every idle session's ≈ 16 KB of live heap (docs/benchmarks.md).
// Rewind datagrams are small (keep-alives and acknowledgements a few dozen bytes, a text a few
// hundred), and bufio reads and writes larger than its buffer go straight to the socket, so
// 512 bytes each costs no extra system call for a typical datagram and at most one more for a
// large one (over 512 bytes). 1 KB each measured ≈ 1 KB more RSS per session at 8 000.
const (
	connReadBuffer  = 512
	connWriteBuffer = 512
)

// smallBuffers wraps the ResponseWriter of an upgrade so that Hijack returns the connection
// with connReadBuffer / connWriteBuffer sized buffers instead of net/http's. Bytes the client
// sent after its request (already in net/http's reader) are carried over; the 101 response was
// flushed by net/http before Hijack returns.
type smallBuffers struct {
	http.ResponseWriter
	hj http.Hijacker
}

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := w.hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	if n := brw.Writer.Buffered(); n > 0 {
		if err := brw.Writer.Flush(); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	br := bufio.NewReaderSize(conn, connReadBuffer)
	if n := brw.Reader.Buffered(); n > 0 {
		// The early bytes must sit in the new reader's buffer, not behind it: coder/websocket
		// takes what is buffered and then reads the connection itself.
		early, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn), max(n, connReadBuffer))
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(conn, connWriteBuffer)), nil
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// withSmallBuffers wraps w when it can be hijacked; otherwise it returns w unchanged (and the
// upgrade fails as it would have).
func withSmallBuffers(w http.ResponseWriter) http.ResponseWriter {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return w
	}
	return smallBuffers{ResponseWriter: w, hj: hj}
}
