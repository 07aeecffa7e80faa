import AtollCore
import Foundation
import Glibc

/// The CLI's `config.json`, in its configuration directory (`--config DIR`, else $ATOLL_CONFIG,
/// else ~/.atoll), in Docker's format: registry credentials from `atoll login` (`{"auths":
/// {"REGISTRY": {"auth": base64("user:password")}}}`) and contexts (`contexts`,
/// `currentContext`). The directory is 0700 and the file 0600, replaced whole on every change so
/// that a crash never leaves half of it; keys a command does not own are kept as they were.
struct CLIConfigFile {
    let path: String

    static var directory: String {
        if let explicit = ProcessInfo.processInfo.environment["ATOLL_CONFIG"], !explicit.isEmpty { return explicit }
        let home = ProcessInfo.processInfo.environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? "/root"
        return "\(home)/.atoll"
    }

    init(directory: String = CLIConfigFile.directory) {
        path = "\(directory)/config.json"
    }

    /// Every registry domain with stored credentials.
    func registries() throws -> [String] {
        ((try document()["auths"] as? [String: Any]) ?? [:]).keys.sorted()
    }

    /// The stored credentials for a registry domain, if any.
    func credentials(for registry: String) throws -> (username: String, password: String)? {
        guard let encoded = (try document()["auths"] as? [String: Any])?[registry] as? [String: Any],
            let auth = encoded["auth"] as? String
        else { return nil }
        guard let decoded = Data(base64Encoded: auth).flatMap({ String(data: $0, encoding: .utf8) }),
            let colon = decoded.firstIndex(of: ":")
        else {
            throw AtollError.invalidArgument("\(path): the credentials for \(registry) are not base64 of user:password")
        }
        return (String(decoded[..<colon]), String(decoded[decoded.index(after: colon)...]))
    }

    func store(_ username: String, _ password: String, for registry: String) throws {
        var document = try document()
        var auths = document["auths"] as? [String: Any] ?? [:]
        auths[registry] = ["auth": Data("\(username):\(password)".utf8).base64EncodedString()]
        document["auths"] = auths
        try write(document)
    }

    /// Forgets a registry's credentials; false when there were none.
    func remove(_ registry: String) throws -> Bool {
        var document = try document()
        guard var auths = document["auths"] as? [String: Any], auths.removeValue(forKey: registry) != nil else {
            return false
        }
        document["auths"] = auths
        try write(document)
        return true
    }

    func document() throws -> [String: Any] {
        let bytes: [UInt8]
        do { bytes = try FileSystem.readFile(path, limit: 16 << 20) } catch {
            if (error as? SystemCallError)?.errno == ENOENT { return [:] }
            throw error
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            throw AtollError.invalidArgument("\(path) is not a JSON object; fix or remove it")
        }
        return object
    }

    func write(_ document: [String: Any]) throws {
        let directory = (path as NSString).deletingLastPathComponent
        try Syscall.mkdirAll(directory, mode: 0o700)
        let data = try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])
        try FileSystem.writeFileAtomically(path, [UInt8](data), mode: 0o600)
    }
}
