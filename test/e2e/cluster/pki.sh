#!/usr/bin/env bash
# The e2e cluster's own PKI (openssl): a CA, the API server's serving certificate, client
# certificates for the admin and the kubelet, the service-account key pair, and two kubeconfigs.
#   pki.sh DIR NODE_NAME
set -euo pipefail
dir=$1 node=$2
mkdir -p "$dir" && cd "$dir"
openssl genrsa -out ca.key 2048 2> /dev/null
openssl req -x509 -new -key ca.key -days 30 -subj /CN=tether-e2e-ca -out ca.crt
# cert NAME SUBJECT [SUBJECT_ALT_NAMES]: a key and a certificate signed by the CA (server and client use with SANs)
cert() {
  openssl genrsa -out "$1.key" 2048 2> /dev/null
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  if [ -n "${3:-}" ]; then printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3"; else printf 'extendedKeyUsage=clientAuth\n'; fi > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "$1.ext" -out "$1.crt" 2> /dev/null
  rm "$1.csr" "$1.ext"
}
cert apiserver /CN=kube-apiserver "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
cert admin /CN=admin/O=system:masters
cert kubelet "/CN=system:node:$node/O=system:nodes"
cert kubelet-serving "/CN=$node" "IP:127.0.0.1,DNS:localhost,DNS:$node"
openssl genrsa -out sa.key 2048 2> /dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2> /dev/null
for user in admin kubelet; do
  cat > "$user.kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster: {certificate-authority: $dir/ca.crt, server: "https://127.0.0.1:6443"}
users:
  - name: $user
    user: {client-certificate: $dir/$user.crt, client-key: $dir/$user.key}
contexts:
  - name: e2e
    context: {cluster: e2e, user: $user}
current-context: e2e
KUBECONFIG
done
chmod 0600 ./*.key
