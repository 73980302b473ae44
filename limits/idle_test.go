package limits

import (
	"bufio"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

// A keep-alive connection idle for longer than the stall timeout still gets
// the server's answer to its next request, even one the server refuses
// itself (a malformed request never reaches Stall to re-arm the deadline):
// the write deadline Stall leaves after a response must not outlive it
// (net/http clears it once the response is finished).
func TestIdleConnectionKeepsNoStaleDeadline(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		srv := startPipeServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		}))
		c := srv.dial(t)
		br := bufio.NewReader(c)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()

		// Idle past any deadline Stall left: fake time, in the bubble.
		time.Sleep(3 * testStall)
		go io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n")
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer to a malformed request on an idle connection: %v", err)
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("malformed request: %d, want 400", resp.StatusCode)
		}
	})
}
