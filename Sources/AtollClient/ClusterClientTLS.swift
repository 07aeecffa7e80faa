import AtollClusterPKI
import AtollCore
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import NIOSSL
import X509

/// The admin client's mutual TLS: the bundle's certificate and key, and a server whose
/// certificate the bundle's CA signed for a manager.
enum ClusterClientTLS {
    static func security(directory: String) throws -> HTTP2ClientTransport.Posix.TransportSecurity {
        func read(_ name: String) throws -> String {
            do { return String(decoding: try FileSystem.readFile("\(directory)/\(name)"), as: UTF8.self) } catch {
                throw AtollError.invalidArgument("cannot read \(name) in the TLS directory \(directory): \(error)")
            }
        }
        let (caPEM, certificatePEM, keyPEM) = (try read("ca.pem"), try read("cert.pem"), try read("key.pem"))
        let ca: CertificateAuthorityCheck
        do { ca = try CertificateAuthorityCheck(certificate: try Certificate(pemEncoded: caPEM)) } catch {
            throw AtollError.invalidArgument("\(directory)/ca.pem is not a cluster CA certificate: \(error)")
        }
        return .mTLS(
            certificateChain: [.bytes(Array(certificatePEM.utf8), format: .pem)],
            privateKey: .bytes(Array(keyPEM.utf8), format: .pem)
        ) {
            $0.serverCertificateVerification = .noHostnameVerification
            // Checked by the callback; NIOSSL wants the roots all the same.
            $0.trustRoots = .certificates([.bytes(Array(caPEM.utf8), format: .pem)])
            $0.customVerificationCallback = { presented, promise in
                guard let leaf = presented.first.flatMap({ try? Certificate(derEncoded: $0.toDERBytes()) }),
                    ca.validatesManager(leaf)
                else {
                    promise.succeed(.failed)
                    return
                }
                promise.succeed(.certificateVerified(VerificationMetadata(ValidatedCertificateChain(presented))))
            }
        }
    }
}
