#!/bin/bash
# tls-certs.sh - certificates and pre-shared keys for repvol's TLS, with
# GnuTLS's certtool and psktool (package gnutls-bin).
#
#   tls-certs.sh ca DIR
#       a new CA: DIR/ca-cert.pem, DIR/ca-key.pem (keep the key offline)
#   tls-certs.sh server CADIR [--out DIR] [--cn NAME] [--ip IP]... [--dns NAME]...
#       DIR/server-cert.pem + server-key.pem signed by CADIR's CA, valid for
#       each --ip and --dns (default: localhost, 127.0.0.1, ::1), and a copy
#       of ca-cert.pem: the directory "repvold --tls-dir" and nbdkit read
#   tls-certs.sh client CADIR CN [--out DIR] [--expired]
#       DIR/client-cert.pem + client-key.pem for identity CN, and ca-cert.pem:
#       the directory "repvol --tls-dir" reads (--expired: one that expired
#       yesterday, for tests)
#   tls-certs.sh psk FILE USER
#       add a random 256-bit key for USER to FILE (psktool's user:hexkey)
#
# DIR defaults to CADIR, so one directory can hold everything a host needs
# (the layout of nbdkit --tls-certificates and qemu tls-creds-x509).  Keys
# are created 0600.  See repvol-tls(7).
set -euo pipefail

die() { echo "tls-certs.sh: $*" >&2; exit 1; }
command -v certtool >/dev/null || die "certtool not found (apt-get install gnutls-bin)"

# new_key FILE
new_key() {
    (umask 077; certtool --generate-privkey --key-type=ecdsa --sec-param=high \
        --outfile "$1" 2>/dev/null)
}

# sign CADIR OUT PREFIX TEMPLATE: a key and a certificate signed by the CA.
sign() {
    local cadir=$1 out=$2 prefix=$3 tmpl
    [[ -r $cadir/ca-cert.pem && -r $cadir/ca-key.pem ]] ||
        die "$cadir has no ca-cert.pem and ca-key.pem (run: tls-certs.sh ca $cadir)"
    mkdir -p "$out"
    tmpl=$(mktemp)
    printf '%s\n' "$4" > "$tmpl"
    new_key "$out/$prefix-key.pem"
    certtool --generate-certificate --load-ca-certificate "$cadir/ca-cert.pem" \
        --load-ca-privkey "$cadir/ca-key.pem" --load-privkey "$out/$prefix-key.pem" \
        --template "$tmpl" --outfile "$out/$prefix-cert.pem" 2>/dev/null ||
        { rm -f "$tmpl"; die "certtool could not sign $out/$prefix-cert.pem"; }
    rm -f "$tmpl"
    [[ $cadir/ca-cert.pem -ef $out/ca-cert.pem ]] || cp "$cadir/ca-cert.pem" "$out/ca-cert.pem"
}

# A validity window: days from now, or one that ended yesterday.
validity() {
    if [[ ${1:-} == expired ]]; then
        echo "activation_date = \"$(date -u -d '-10 days' '+%Y-%m-%d %H:%M:%S')\""
        echo "expiration_date = \"$(date -u -d '-1 day' '+%Y-%m-%d %H:%M:%S')\""
    else
        echo "expiration_days = 3650"
    fi
}

cmd=${1:-}; shift || true
case $cmd in
ca)
    dir=${1:?usage: tls-certs.sh ca DIR}
    mkdir -p "$dir"
    new_key "$dir/ca-key.pem"
    tmpl=$(mktemp)
    printf 'cn = repvol CA %s\nca\ncert_signing_key\n%s\n' "$(hostname)" "$(validity)" > "$tmpl"
    certtool --generate-self-signed --load-privkey "$dir/ca-key.pem" \
        --template "$tmpl" --outfile "$dir/ca-cert.pem" 2>/dev/null ||
        { rm -f "$tmpl"; die "certtool could not make the CA"; }
    rm -f "$tmpl"
    echo "CA: $dir/ca-cert.pem"
    ;;
server)
    cadir=${1:?usage: tls-certs.sh server CADIR [--out DIR] [--cn NAME] [--ip IP]... [--dns NAME]...}
    shift
    out=$cadir cn=localhost sans=()
    while (($#)); do
        case $1 in
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --cn) cn=${2:?--cn needs a name}; shift 2 ;;
        --ip) sans+=("ip_address = ${2:?--ip needs an address}"); shift 2 ;;
        --dns) sans+=("dns_name = ${2:?--dns needs a name}"); shift 2 ;;
        *) die "server: unknown option $1" ;;
        esac
    done
    ((${#sans[@]})) || sans=("dns_name = localhost" "ip_address = 127.0.0.1" "ip_address = ::1")
    sign "$cadir" "$out" server "$(printf 'cn = %s\n' "$cn"; printf '%s\n' "${sans[@]}"
        printf 'tls_www_server\nsigning_key\nencryption_key\n'; validity)"
    echo "server $cn: $out/server-cert.pem"
    ;;
client)
    cadir=${1:?usage: tls-certs.sh client CADIR CN [--out DIR] [--expired]}
    cn=${2:?usage: tls-certs.sh client CADIR CN [--out DIR] [--expired]}
    shift 2
    out=$cadir when=
    while (($#)); do
        case $1 in
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        --expired) when=expired; shift ;;
        *) die "client: unknown option $1" ;;
        esac
    done
    sign "$cadir" "$out" client "$(printf 'cn = %s\ntls_www_client\nsigning_key\nencryption_key\n' "$cn"
        validity $when)"
    echo "client $cn: $out/client-cert.pem"
    ;;
psk)
    file=${1:?usage: tls-certs.sh psk FILE USER}
    user=${2:?usage: tls-certs.sh psk FILE USER}
    [[ $user =~ ^[A-Za-z0-9._-]+$ ]] || die "psk: user names are A-Z a-z 0-9 . _ -"
    (umask 077; psktool -u "$user" -p "$file" >/dev/null)
    echo "PSK for $user: $file"
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
