package registrar

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"

	"github.com/fepool/fepool/registrar/topology"
)

// internalTLS is the client config of the emulator's own TLS hops (front door to Front End,
// Front End to front door): every listener presents the same certificate, so the peer must
// present exactly that one (pinned) rather than chain to a CA.
func internalTLS(server *tls.Config) *tls.Config {
	if server == nil || len(server.Certificates) == 0 || len(server.Certificates[0].Certificate) == 0 {
		return nil
	}
	ours := server.Certificates[0].Certificate[0]
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, //nolint:gosec // replaced by the pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, ours) {
				return errors.New("TLS peer is not one of this emulator's listeners")
			}
			return nil
		},
	}
}

// tlsConfig loads the configured certificate, or makes a self-signed one naming every pool, Front
// End and front door by FQDN and address. It returns nil when no listener serves TLS.
func tlsConfig(t *topology.Topology) (*tls.Config, error) {
	var names []string
	var ips []net.IP
	needed := false
	for _, p := range t.Pools {
		names = append(names, p.FQDN)
		for _, fe := range p.FrontEnds {
			names = append(names, fe.FQDN)
			ips = append(ips, fe.Address.AsSlice())
			needed = needed || fe.Ports.TLS != 0
		}
		if fd := p.FrontDoor; fd != nil {
			names = append(names, fd.FQDN)
			ips = append(ips, fd.Address.AsSlice())
			needed = needed || fd.Ports.TLS != 0
		}
	}
	if !needed {
		return nil, nil
	}
	if t.SIP.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(t.SIP.TLSCert, t.SIP.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("TLS certificate: %w", err)
		}
		return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: t.Pools[0].FQDN, Organization: []string{"fepool emulator (self-signed)"}},
		DNSNames:              append(names, "localhost"),
		IPAddresses:           append(ips, net.IPv4(127, 0, 0, 1)),
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
