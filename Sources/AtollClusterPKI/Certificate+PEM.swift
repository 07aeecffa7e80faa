import AtollCore
import SwiftASN1
import X509

extension Certificate {
    /// The certificate as PEM, `-----BEGIN CERTIFICATE-----`, ending in a newline.
    public var pem: String {
        get throws {
            do {
                return try serializeAsPEM().pemString + "\n"
            } catch {
                throw AtollError.internalError("cannot encode certificate as pem", cause: error)
            }
        }
    }

    /// The certificate's DER bytes, exactly as signed (a parsed certificate keeps its original bytes).
    public var derBytes: [UInt8] {
        get throws {
            var serializer = DER.Serializer()
            do {
                try serializer.serialize(self)
            } catch {
                throw AtollError.internalError("cannot encode certificate as der", cause: error)
            }
            return serializer.serializedBytes
        }
    }

    /// Parses one PEM `CERTIFICATE` block; an invalidArgument error for anything else.
    public init(pem: String) throws {
        do {
            try self.init(pemEncoded: pem)
        } catch {
            throw AtollError.invalidArgument("invalid certificate: want one pem certificate", cause: error)
        }
    }

    /// Parses every `CERTIFICATE` block of a PEM bundle, in order (a chain or a set of roots).
    public static func certificates(fromPEMBundle pem: String) throws -> [Certificate] {
        do {
            let documents = try PEMDocument.parseMultiple(pemString: pem)
            guard !documents.isEmpty else { throw AtollError.invalidArgument("no pem block found") }
            return try documents.map { try Certificate(pemDocument: $0) }
        } catch {
            throw AtollError.invalidArgument("invalid certificate bundle: want pem certificates", cause: error)
        }
    }
}
