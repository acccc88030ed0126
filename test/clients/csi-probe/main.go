// csi-probe is a second, real gRPC client for tether's CSI socket: it dials the
// endpoint the way the kubernetes-csi sidecars do (csi-lib-utils
// connection.Connect, grpc-go) and calls Identity.GetPluginInfo and
// Identity.Probe through csi-lib-utils' rpc helpers.
//
// It exists to prove the server accepts the HTTP/2 :authority values that real
// CO clients send over unix sockets. The bytes the client writes are relayed
// through a private unix socket and decoded, so the reported authority is what
// actually went over the wire, not what we think grpc-go chose.
//
// Output on success (exit 0):
//
//	ok driver=<name> ready=<bool> authority=<value sent>
//
// On failure it prints "FAIL: ..." to stderr and exits 1 (2 for bad usage).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kubernetes-csi/csi-lib-utils/connection"
	"github.com/kubernetes-csi/csi-lib-utils/rpc"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	endpoint := flag.String("endpoint", "", "CSI endpoint, unix:///path/to/csi.sock (required)")
	authority := flag.String("authority", "", "override the HTTP/2 :authority (e.g. the socket path, as kubelet < 1.26 sent it); "+
		"an explicit empty value makes grpc-go send an empty :authority. Unset: sidecar default (csi-lib-utils connection.Connect)")
	timeout := flag.Duration("timeout", 10*time.Second, "overall deadline for connecting and both calls")
	flag.Parse()

	authoritySet := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "authority" {
			authoritySet = true
		}
	})

	sockPath, err := socketPath(*endpoint)
	if err != nil {
		usage(err)
	}
	if flag.NArg() > 0 {
		usage(fmt.Errorf("unexpected arguments: %v", flag.Args()))
	}
	if fi, err := os.Stat(sockPath); err != nil {
		fail("cannot use endpoint %s: %v", *endpoint, err)
	} else if fi.Mode()&os.ModeSocket == 0 {
		fail("endpoint %s: %s is not a unix socket", *endpoint, sockPath)
	}

	tap, err := newWireTap(sockPath)
	if err != nil {
		fail("starting wire tap: %v", err)
	}
	defer tap.Close()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	var conn *grpc.ClientConn
	if !authoritySet {
		// Exactly what external-provisioner, node-driver-registrar, ... do.
		conn, err = connection.Connect(ctx, "unix://"+tap.path, nil, connection.WithTimeout(*timeout))
	} else {
		conn, err = dialWithAuthority(ctx, tap.path, *authority)
	}
	if err != nil {
		if derr := tap.DialErr(); derr != nil {
			err = fmt.Errorf("%v (last error: %v)", err, derr)
		}
		fail("connecting to %s within %s: %v", *endpoint, *timeout, err)
	}
	defer conn.Close()

	name, err := rpc.GetDriverName(ctx, conn)
	if err != nil {
		fail("Identity.GetPluginInfo: %v (authority sent: %s)", err, tap.Authority())
	}
	ready, err := rpc.Probe(ctx, conn)
	if err != nil {
		fail("Identity.Probe: %v (authority sent: %s)", err, tap.Authority())
	}
	fmt.Printf("ok driver=%s ready=%t authority=%s\n", name, ready, tap.Authority())
}

// socketPath accepts unix:///abs/path (and a bare /abs/path, as csi-lib-utils does).
func socketPath(endpoint string) (string, error) {
	switch {
	case endpoint == "":
		return "", errors.New("--endpoint is required (unix:///path/to/csi.sock)")
	case strings.HasPrefix(endpoint, "unix://"):
		p := strings.TrimPrefix(endpoint, "unix://")
		if p == "" {
			return "", fmt.Errorf("--endpoint %q has no socket path", endpoint)
		}
		return p, nil
	case strings.HasPrefix(endpoint, "/"):
		return endpoint, nil
	default:
		return "", fmt.Errorf("--endpoint %q: only unix:// endpoints are supported", endpoint)
	}
}

// dialWithAuthority uses the same dial options as csi-lib-utils connection.connect
// (which does not let callers add options) plus grpc.WithAuthority.
func dialWithAuthority(ctx context.Context, path, authority string) (*grpc.ClientConn, error) {
	bc := backoff.DefaultConfig
	bc.MaxDelay = time.Second
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bc}),
		grpc.WithBlock(),
		grpc.WithIdleTimeout(0),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}),
	}
	target := "unix://" + path
	if authority != "" {
		opts = append(opts, grpc.WithAuthority(authority))
	} else {
		// grpc.WithAuthority("") means "no override". A passthrough target with an
		// empty endpoint makes grpc-go derive, and send, an empty :authority
		// (what grpc-go did for some targets in 2019, grpc/grpc-go#2628).
		target = "passthrough:///"
	}
	//nolint:staticcheck // DialContext+WithBlock is what csi-lib-utils uses.
	return grpc.DialContext(ctx, target, opts...)
}

// wireTap relays a private unix socket to the real one and decodes the
// client->server HTTP/2 stream to record the :authority of each request.
type wireTap struct {
	path string
	dir  string
	ln   net.Listener

	mu      sync.Mutex
	seen    []string // one entry per request HEADERS frame; "<none>" if absent
	dialErr error    // last failure to reach the real socket
}

func newWireTap(target string) (*wireTap, error) {
	dir, err := os.MkdirTemp("", "csi-probe-")
	if err != nil {
		return nil, err
	}
	t := &wireTap{dir: dir, path: filepath.Join(dir, "tap.sock")}
	t.ln, err = net.Listen("unix", t.path)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() {
		for {
			c, err := t.ln.Accept()
			if err != nil {
				return
			}
			go t.relay(c, target)
		}
	}()
	return t, nil
}

func (t *wireTap) Close() {
	t.ln.Close()
	os.RemoveAll(t.dir)
}

// Authority returns what the first request carried: the value as sent,
// `""` if it was empty, `<none>` if the header was absent, `<not-observed>`
// if no request HEADERS frame was seen.
func (t *wireTap) Authority() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.seen) == 0 {
		return "<not-observed>"
	}
	return t.seen[0]
}

// DialErr is the last error seen dialing the real socket, if any.
func (t *wireTap) DialErr() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dialErr
}

func (t *wireTap) relay(client net.Conn, target string) {
	defer client.Close()
	upstream, err := net.Dial("unix", target)
	t.mu.Lock()
	t.dialErr = err
	t.mu.Unlock()
	if err != nil {
		return
	}
	defer upstream.Close()

	pr, pw := io.Pipe()
	go t.decode(pr)
	go func() {
		io.Copy(client, upstream)
		client.Close()
	}()
	io.Copy(upstream, io.TeeReader(client, pw))
	pw.Close()
	if uc, ok := upstream.(*net.UnixConn); ok {
		uc.CloseWrite()
	}
}

func (t *wireTap) decode(r *io.PipeReader) {
	// Never block the relay: whatever happens, keep draining the pipe.
	defer io.Copy(io.Discard, r)
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(r, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	fr := http2.NewFramer(nil, r)
	dec := hpack.NewDecoder(4096, nil)
	dec.SetAllowedMaxDynamicTableSize(1 << 20)
	fr.ReadMetaHeaders = dec
	fr.MaxHeaderListSize = 1 << 20
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				continue // e.g. a header the framer itself finds invalid; keep going
			}
			return
		}
		mh, ok := f.(*http2.MetaHeadersFrame)
		if !ok {
			continue
		}
		val := "<none>"
		for _, hf := range mh.Fields {
			if hf.Name == ":authority" {
				val = hf.Value
				if val == "" {
					val = `""`
				}
				break
			}
		}
		t.mu.Lock()
		t.seen = append(t.seen, val)
		t.mu.Unlock()
	}
}

func usage(err error) {
	fmt.Fprintf(os.Stderr, "csi-probe: %v\n", err)
	flag.Usage()
	os.Exit(2)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}
