import AtollCore
import AtollOCI
import CAtollShim
import Foundation
import Glibc

@testable import AtollStorage

/// A temporary directory for one test, removed (after unmounting what the test mounted) when
/// the fixture goes away. Builds layer tars with python3's tarfile module.
final class LayerFixture {
    let path: String
    private var mounts: [String] = []

    init() throws {
        var template = Array("/tmp/atoll-layer-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw AtollError.internalError("mkdtemp failed") }
        path = String(cString: made)
    }

    deinit {
        for mount in mounts.reversed() { try? Syscall.unmount(mount, flags: Int32(MNT_DETACH), missingIsFine: true) }
        try? FileSystem.removeTree(path)
    }

    /// Creates (and returns) a directory inside the fixture.
    @discardableResult
    func directory(_ name: String) throws -> String {
        let full = "\(path)/\(name)"
        try Syscall.mkdirAll(full)
        return full
    }

    func mountOverlay(lower: [String], upper: String, work: String, at target: String) throws {
        try Syscall.mount(
            source: "overlay", target: target, type: "overlay",
            data: "lowerdir=\(lower.joined(separator: ":")),upperdir=\(upper),workdir=\(work)")
        mounts.append(target)
    }

    func unmount(_ target: String) throws {
        try Syscall.unmount(target)
        mounts.removeAll { $0 == target }
    }

    /// Writes a tar built by a python snippet: `add(name, ...)` helpers are predefined (see
    /// below) and `t` is the open PAX tarfile. Returns the tar's path.
    @discardableResult
    func tar(_ name: String, _ body: String) throws -> String {
        let output = "\(path)/\(name)"
        let script = """
            import tarfile, io, sys
            t = tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT)
            def add(name, kind=tarfile.REGTYPE, data=b'', mode=0o644, uid=0, gid=0, mtime=1700000000, link='', major=0, minor=0, pax=None):
                ti = tarfile.TarInfo(name)
                ti.type = kind; ti.mode = mode; ti.uid = uid; ti.gid = gid; ti.mtime = mtime
                ti.linkname = link; ti.devmajor = major; ti.devminor = minor
                if pax: ti.pax_headers = pax
                ti.size = len(data) if kind == tarfile.REGTYPE else 0
                t.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
            def d(name, **kw): add(name, tarfile.DIRTYPE, mode=kw.pop('mode', 0o755), **kw)
            def sym(name, target, **kw): add(name, tarfile.SYMTYPE, link=target, **kw)
            def hard(name, target, **kw): add(name, tarfile.LNKTYPE, link=target, **kw)
            \(body.split(separator: "\n").joined(separator: "\n"))
            t.close()
            """
        try run("/usr/bin/env", ["python3", "-c", script, output])
        return output
    }

    /// Compresses a file with gzip or zstd (the system tools), returning the new path.
    func compress(_ file: String, _ compression: LayerCompression) throws -> String {
        switch compression {
        case .none: return file
        case .gzip:
            try run("/bin/sh", ["-c", "gzip -c '\(file)' > '\(file).gz'"])
            return file + ".gz"
        case .zstd:
            try run("/bin/sh", ["-c", "zstd -q -c '\(file)' > '\(file).zst'"])
            return file + ".zst"
        }
    }

    func run(_ executable: String, _ arguments: [String]) throws {
        let result = try Subprocess.run(executable, arguments)
        guard result.succeeded else {
            throw AtollError.internalError("\(arguments.first ?? executable) failed: \(result.stderr)")
        }
    }

    func open(_ file: String) throws -> FileDescriptor { try Syscall.open(file, flags: O_RDONLY) }

    @discardableResult
    func apply(_ file: String, to root: String, _ style: WhiteoutStyle = .native, limits: LayerLimits = .default)
        throws -> AppliedLayer
    {
        try Layer.apply(from: open(file), toDirectory: root, whiteouts: style, limits: limits)
    }

    /// Names in the fixture directory itself (to prove nothing appeared outside a root).
    func topLevelNames() throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: path))
    }
}

func lstatOrNil(_ path: String) -> stat? {
    var st = stat()
    return lstat(path, &st) == 0 ? st : nil
}

func fileDigest(_ path: String) throws -> Digest {
    Digest.sha256(of: try FileSystem.readFile(path, limit: 1 << 30))
}

/// A description of every entry below `root` (type, mode, owner, size, mtime, link target,
/// content digest, xattrs), for comparing trees.
func treeListing(_ root: String) throws -> [String: String] {
    var result: [String: String] = [:]
    guard let enumerator = FileManager.default.enumerator(atPath: root) else { return result }
    while let relative = enumerator.nextObject() as? String {
        let full = root + "/" + relative
        guard let st = lstatOrNil(full) else { continue }
        var line = "mode=\(String(st.st_mode, radix: 8)) uid=\(st.st_uid) gid=\(st.st_gid)"
        switch st.st_mode & S_IFMT {
        case S_IFREG: line += " size=\(st.st_size) sha=\(try fileDigest(full).shortID)"
        case S_IFLNK: line += " link=\(try Syscall.readlink(full))"
        case S_IFCHR, S_IFBLK: line += " rdev=\(atoll_major(st.st_rdev)),\(atoll_minor(st.st_rdev))"
        default: break
        }
        if st.st_mode & S_IFMT != S_IFLNK { line += " mtime=\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)" }
        line += " xattrs=\(xattrNames(full))"
        result[relative] = line
    }
    return result
}

func xattrNames(_ path: String) -> [String] {
    var buffer = [CChar](repeating: 0, count: 8192)
    let n = atoll_llistxattr(path, &buffer, buffer.count)
    guard n > 0 else { return [] }
    return buffer[0..<n].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        .filter { !$0.hasPrefix("trusted.overlay.") }.sorted()
}

func xattrValue(_ path: String, _ name: String) -> String? {
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = atoll_lgetxattr(path, name, &buffer, buffer.count)
    guard n >= 0 else { return nil }
    return String(decoding: buffer[0..<n], as: UTF8.self)
}
