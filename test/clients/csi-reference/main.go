// csi-reference is the Go baseline of tether's per-call, start-up and memory benchmarks (bench/suites
// overhead.ts and process.ts): a CSI node plugin served the way the Kubernetes reference driver,
// csi-driver-host-path's hostpathplugin, serves one — grpc-go on a unix socket, one unary interceptor
// that logs the method through klog (Probe at -v=5, the rest at -v=3) and the request with its secrets
// stripped (csi-lib-utils protosanitizer) at -v=5, a state directory with a JSON state file read at
// start. hostpathplugin itself cannot be built here: the Go module proxy serves no version of
// github.com/kubernetes-csi/csi-driver-host-path (every one tried answered 403), so this stands in for
// it with the same libraries and the same work per call. It answers Identity (GetPluginInfo,
// GetPluginCapabilities, Probe) and Node (NodeGetCapabilities, NodeGetInfo); everything else is
// UNIMPLEMENTED.
//
// Usage: csi-reference --endpoint unix:///path/csi.sock --nodeid NODE --drivername NAME --statedir DIR [-v N]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-lib-utils/protosanitizer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/klog/v2"
)

type state struct {
	Volumes []json.RawMessage `json:"volumes"`
}

type identity struct {
	csi.UnimplementedIdentityServer
	name string
}

func (s *identity) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: s.name, VendorVersion: "reference"}, nil
}

func (s *identity) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	return &csi.GetPluginCapabilitiesResponse{}, nil
}

func (s *identity) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{}, nil
}

type node struct {
	csi.UnimplementedNodeServer
	nodeID string
}

func nodeCap(t csi.NodeServiceCapability_RPC_Type) *csi.NodeServiceCapability {
	return &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{Rpc: &csi.NodeServiceCapability_RPC{Type: t}}}
}

func (s *node) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	return &csi.NodeGetCapabilitiesResponse{Capabilities: []*csi.NodeServiceCapability{
		nodeCap(csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME),
		nodeCap(csi.NodeServiceCapability_RPC_GET_VOLUME_STATS),
		nodeCap(csi.NodeServiceCapability_RPC_VOLUME_CONDITION),
		nodeCap(csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER),
	}}, nil
}

func (s *node) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	if s.nodeID == "" {
		return nil, status.Error(codes.Unavailable, "no node ID")
	}
	return &csi.NodeGetInfoResponse{NodeId: s.nodeID}, nil
}

// logCall is hostpathplugin's kind of interceptor: the method at -v=3 (Probe at -v=5), request and
// response with secrets stripped at -v=5, errors always.
func logCall(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	level := klog.Level(3)
	if info.FullMethod == "/csi.v1.Identity/Probe" {
		level = 5
	}
	klog.V(level).Infof("GRPC call: %s", info.FullMethod)
	v5 := klog.V(5)
	if v5.Enabled() {
		v5.Infof("GRPC request: %s", protosanitizer.StripSecrets(req))
	}
	resp, err := handler(ctx, req)
	if err != nil {
		klog.Errorf("GRPC error: %v", err)
	}
	if v5.Enabled() {
		v5.Infof("GRPC response: %s", protosanitizer.StripSecrets(resp))
	}
	return resp, err
}

// loadState reads DIR/state.json, writing an empty one first if there is none.
func loadState(dir string) (*state, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "state.json")
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		data = []byte(`{"volumes":[]}`)
		err = os.WriteFile(file, data, 0o600)
	}
	if err != nil {
		return nil, err
	}
	var s state
	return &s, json.Unmarshal(data, &s)
}

func listen(endpoint string) (net.Listener, error) {
	path, ok := strings.CutPrefix(endpoint, "unix://")
	if !ok {
		return nil, fmt.Errorf("endpoint %q: only unix:// endpoints", endpoint)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return net.Listen("unix", path)
}

func main() {
	klog.InitFlags(nil)
	endpoint := flag.String("endpoint", "unix:///tmp/csi.sock", "CSI endpoint")
	nodeID := flag.String("nodeid", "", "node id")
	driverName := flag.String("drivername", "reference.csi.k8s.io", "driver name")
	stateDir := flag.String("statedir", "/csi-data-dir", "directory for the state file")
	flag.Parse()

	if _, err := loadState(*stateDir); err != nil {
		klog.Fatalf("state: %v", err)
	}
	listener, err := listen(*endpoint)
	if err != nil {
		klog.Fatalf("listen: %v", err)
	}
	server := grpc.NewServer(grpc.UnaryInterceptor(logCall))
	csi.RegisterIdentityServer(server, &identity{name: *driverName})
	csi.RegisterNodeServer(server, &node{nodeID: *nodeID})
	go func() {
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
		<-signals
		server.GracefulStop()
	}()
	klog.Infof("Listening for connections on address: %#v", listener.Addr())
	if err := server.Serve(listener); err != nil {
		klog.Fatalf("serve: %v", err)
	}
}
