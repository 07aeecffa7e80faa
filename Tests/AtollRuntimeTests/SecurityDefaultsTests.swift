import AtollCore
import Foundation
import Testing

@testable import AtollRuntime

@Suite struct CapabilityTests {
    @Test func noChangesGiveDockersDefaultSet() throws {
        let caps = try SecurityDefaults.capabilities(adding: [], dropping: [], privileged: false)
        #expect(caps == SecurityDefaults.defaultCapabilities)
        #expect(caps.count == 14)
        #expect(caps.contains("CAP_NET_BIND_SERVICE"))
        #expect(!caps.contains("CAP_SYS_ADMIN"))
    }

    @Test func allCapabilitiesRunFromChownToCheckpointRestoreInKernelOrder() {
        #expect(SecurityDefaults.allCapabilities.count == 41)
        #expect(SecurityDefaults.allCapabilities.first == "CAP_CHOWN")
        #expect(SecurityDefaults.allCapabilities[21] == "CAP_SYS_ADMIN")
        #expect(SecurityDefaults.allCapabilities.last == "CAP_CHECKPOINT_RESTORE")
        #expect(Set(SecurityDefaults.allCapabilities).count == 41)
    }

    @Test func namesAreCaseInsensitiveWithOrWithoutThePrefix() throws {
        let caps = try SecurityDefaults.capabilities(
            adding: ["sys_admin", "CAP_net_admin", "Sys_Ptrace"], dropping: ["cap_chown", "MKNOD"], privileged: false)
        #expect(caps.contains("CAP_SYS_ADMIN"))
        #expect(caps.contains("CAP_NET_ADMIN"))
        #expect(caps.contains("CAP_SYS_PTRACE"))
        #expect(!caps.contains("CAP_CHOWN"))
        #expect(!caps.contains("CAP_MKNOD"))
        #expect(caps.count == 14 - 2 + 3)
    }

    @Test func theResultIsInKernelOrderWithoutDuplicates() throws {
        let caps = try SecurityDefaults.capabilities(
            adding: ["SYS_ADMIN", "sys_admin", "CHOWN", "BPF"], dropping: [], privileged: false)
        #expect(caps.count == Set(caps).count)
        let positions = caps.compactMap { SecurityDefaults.allCapabilities.firstIndex(of: $0) }
        #expect(positions == positions.sorted())
        #expect(caps.last == "CAP_BPF")
    }

    @Test func addingAllGivesEverythingButWhatIsDropped() throws {
        let caps = try SecurityDefaults.capabilities(adding: ["all"], dropping: ["SYS_ADMIN"], privileged: false)
        #expect(caps.count == 40)
        #expect(!caps.contains("CAP_SYS_ADMIN"))
        #expect(caps.contains("CAP_SYS_MODULE"))
    }

    @Test func droppingAllKeepsOnlyWhatIsAdded() throws {
        let caps = try SecurityDefaults.capabilities(adding: ["NET_BIND_SERVICE"], dropping: ["ALL"], privileged: false)
        #expect(caps == ["CAP_NET_BIND_SERVICE"])
        #expect(try SecurityDefaults.capabilities(adding: [], dropping: ["all"], privileged: false).isEmpty)
    }

    @Test func privilegedGivesEveryCapability() throws {
        let caps = try SecurityDefaults.capabilities(adding: [], dropping: ["CHOWN"], privileged: true)
        #expect(caps == SecurityDefaults.allCapabilities)
    }

    @Test func anUnknownNameIsRejectedAndNamed() {
        #expect(throws: AtollError.self) {
            try SecurityDefaults.capabilities(adding: ["SYS_WIZARD"], dropping: [], privileged: false)
        }
        #expect(throws: AtollError.self) {
            try SecurityDefaults.capabilities(adding: [], dropping: ["CAP_"], privileged: false)
        }
        do {
            _ = try SecurityDefaults.capabilities(adding: ["SYS_WIZARD"], dropping: [], privileged: false)
            Issue.record("an unknown capability was accepted")
        } catch let error as AtollError {
            #expect(error.code == .invalidArgument)
            #expect(error.message == "unknown capability \"SYS_WIZARD\"")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }
}

@Suite struct SeccompProfileTests {
    private func allowed(_ profile: Seccomp, _ name: String) -> Bool {
        (profile.syscalls ?? []).contains { $0.action == "SCMP_ACT_ALLOW" && $0.args == nil && $0.names.contains(name) }
    }

    private func rules(_ profile: Seccomp, for name: String) -> [SeccompSyscall] {
        (profile.syscalls ?? []).filter { $0.names.contains(name) }
    }

    @Test func theProfileEncodesWithTheRuntimeSpecKeys() throws {
        let profile = SecurityDefaults.seccompProfile(capabilities: SecurityDefaults.defaultCapabilities)
        let data = try JSONEncoder().encode(profile)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["defaultAction"] as? String == "SCMP_ACT_ERRNO")
        #expect(object["defaultErrnoRet"] as? Int == 1)
        #expect(object["syscalls"] is [Any])
        #if arch(x86_64)
            #expect(object["architectures"] as? [String] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        #elseif arch(arm64)
            #expect(object["architectures"] as? [String] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        #endif
        let rules = try #require(object["syscalls"] as? [[String: Any]])
        let first = try #require(rules.first)
        #expect(Set(first.keys) == ["names", "action"])  // nil fields are omitted
        let clone3 = try #require(rules.first { ($0["names"] as? [String]) == ["clone3"] })
        #expect(clone3["errnoRet"] as? Int == 38)
        #expect(try JSONDecoder().decode(Seccomp.self, from: data) == profile)
    }

    @Test func everyContainerMayExecReadAndWait() {
        let profile = SecurityDefaults.seccompProfile(capabilities: SecurityDefaults.defaultCapabilities)
        for name in [
            "execve", "execveat", "read", "write", "openat", "openat2", "statx", "wait4", "rt_sigaction",
            "faccessat2", "close_range", "epoll_pwait2", "pidfd_open", "pidfd_send_signal", "rseq", "futex_waitv",
            "landlock_create_ruleset", "getrandom", "exit_group",
        ] {
            #expect(allowed(profile, name), "\(name) should be allowed")
        }
    }

    @Test func mountIsDeniedWithoutSysAdminAndAllowedWithIt() throws {
        let plain = SecurityDefaults.seccompProfile(capabilities: SecurityDefaults.defaultCapabilities)
        for name in ["mount", "umount2", "unshare", "setns", "bpf", "reboot", "kcmp", "open_by_handle_at"] {
            #expect(!allowed(plain, name), "\(name) should be denied by default")
        }
        let admin = SecurityDefaults.seccompProfile(
            capabilities: try SecurityDefaults.capabilities(adding: ["SYS_ADMIN"], dropping: [], privileged: false))
        for name in ["mount", "umount2", "unshare", "setns", "clone", "clone3", "bpf", "sethostname"] {
            #expect(allowed(admin, name), "\(name) should be allowed with CAP_SYS_ADMIN")
        }
        #expect(rules(admin, for: "clone3").allSatisfy { $0.action == "SCMP_ACT_ALLOW" })
    }

    @Test func withoutSysAdminCloneMayNotCreateNamespacesAndClone3FailsWithENOSYS() throws {
        let profile = SecurityDefaults.seccompProfile(capabilities: SecurityDefaults.defaultCapabilities)
        let clone = rules(profile, for: "clone")
        #expect(clone.count == 1)
        let rule = try #require(clone.first)
        #expect(rule.action == "SCMP_ACT_ALLOW")
        #expect(rule.args == [SeccompArg(index: 0, value: 2_114_060_288, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ")])
        #expect(
            rules(profile, for: "clone3") == [SeccompSyscall(names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38)]
        )
    }

    @Test func personalityIsLimitedToDockersFiveValues() {
        let profile = SecurityDefaults.seccompProfile(capabilities: [])
        let values = rules(profile, for: "personality").compactMap { $0.args?.first?.value }
        #expect(values == [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff])
        #expect(rules(profile, for: "personality").allSatisfy { $0.args?.first?.op == "SCMP_CMP_EQ" })
    }

    @Test func socketIsAllowedForEveryFamilyButAlgAndVsock() {
        let profile = SecurityDefaults.seccompProfile(capabilities: [])
        let socket = rules(profile, for: "socket")
        func permits(_ family: UInt64) -> Bool {
            socket.contains { rule in
                (rule.args ?? []).allSatisfy { arg in
                    switch arg.op {
                    case "SCMP_CMP_LT": return family < arg.value
                    case "SCMP_CMP_GT": return family > arg.value
                    case "SCMP_CMP_EQ": return family == arg.value
                    default: return false
                    }
                }
            }
        }
        #expect(permits(1) && permits(2) && permits(10) && permits(16) && permits(17))  // unix, inet, inet6, ...
        #expect(permits(39) && permits(44))
        #expect(!permits(38))  // AF_ALG
        #expect(!permits(40))  // AF_VSOCK
    }

    @Test func addedCapabilitiesOpenTheirSystemCalls() {
        let plain = SecurityDefaults.seccompProfile(capabilities: SecurityDefaults.defaultCapabilities)
        #expect(allowed(plain, "chroot"))  // CAP_SYS_CHROOT is a default capability
        for name in ["reboot", "settimeofday", "init_module", "kcmp", "syslog", "perf_event_open"] {
            #expect(!allowed(plain, name), "\(name) should be denied by default")
        }
        let extra = SecurityDefaults.seccompProfile(capabilities: [
            "CAP_SYS_BOOT", "CAP_SYS_TIME", "CAP_SYS_MODULE", "CAP_SYS_PTRACE", "CAP_SYSLOG", "CAP_PERFMON",
        ])
        for name in ["reboot", "settimeofday", "clock_settime64", "init_module", "kcmp", "syslog", "perf_event_open"] {
            #expect(allowed(extra, name), "\(name) should be allowed with its capability")
        }
        #expect(!allowed(extra, "chroot"))
        #expect(!allowed(extra, "mount"))
    }

    @Test func maskedAndReadOnlyPathsAreDockers() {
        #expect(SecurityDefaults.maskedPaths.contains("/proc/kcore"))
        #expect(SecurityDefaults.maskedPaths.contains("/sys/firmware"))
        #expect(SecurityDefaults.maskedPaths.contains("/sys/devices/virtual/powercap"))
        #expect(
            SecurityDefaults.readonlyPaths == [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ])
        #expect(Set(SecurityDefaults.maskedPaths).isDisjoint(with: SecurityDefaults.readonlyPaths))
    }
}
