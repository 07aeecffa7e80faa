import AtollCore
import Foundation

/// The seccomp section of an OCI runtime spec (`linux.seccomp` in runtime-spec `config-linux.md`),
/// encoded with the spec's field names. Optional fields left nil are omitted from the JSON.
public struct Seccomp: Codable, Sendable, Hashable {
    /// What happens to a system call no rule matches, e.g. `SCMP_ACT_ERRNO`.
    public var defaultAction: String
    /// The errno a call that falls through to `defaultAction` gets (1, EPERM, in Docker's profile).
    public var defaultErrnoRet: UInt32?
    /// The system-call ABIs the filter covers, e.g. `SCMP_ARCH_X86_64`.
    public var architectures: [String]?
    /// The rules, tried by the runtime for each call.
    public var syscalls: [SeccompSyscall]?

    public init(
        defaultAction: String, defaultErrnoRet: UInt32? = nil, architectures: [String]? = nil,
        syscalls: [SeccompSyscall]? = nil
    ) {
        self.defaultAction = defaultAction
        self.defaultErrnoRet = defaultErrnoRet
        self.architectures = architectures
        self.syscalls = syscalls
    }
}

/// One seccomp rule: an action for the named system calls, optionally only when every argument
/// condition holds.
public struct SeccompSyscall: Codable, Sendable, Hashable {
    public var names: [String]
    /// `SCMP_ACT_ALLOW`, `SCMP_ACT_ERRNO`, ...
    public var action: String
    /// The errno returned when `action` is `SCMP_ACT_ERRNO`.
    public var errnoRet: UInt32?
    /// Argument conditions, all of which must hold (a logical AND).
    public var args: [SeccompArg]?

    public init(names: [String], action: String, errnoRet: UInt32? = nil, args: [SeccompArg]? = nil) {
        self.names = names
        self.action = action
        self.errnoRet = errnoRet
        self.args = args
    }
}

/// A condition on one system-call argument: `args[index] op value` (for `SCMP_CMP_MASKED_EQ`,
/// `args[index] & value == valueTwo`).
public struct SeccompArg: Codable, Sendable, Hashable {
    public var index: UInt
    public var value: UInt64
    public var valueTwo: UInt64?
    /// `SCMP_CMP_EQ`, `SCMP_CMP_NE`, `SCMP_CMP_LT`, `SCMP_CMP_GT`, `SCMP_CMP_MASKED_EQ`, ...
    public var op: String

    public init(index: UInt, value: UInt64, valueTwo: UInt64? = nil, op: String) {
        self.index = index
        self.value = value
        self.valueTwo = valueTwo
        self.op = op
    }
}

/// The confinement Docker gives a container unless told otherwise: its default capability set,
/// its default seccomp profile (which opens up as capabilities are added) and the kernel paths it
/// masks or makes read-only. Each mirrors moby's definition so that a container behaves the same
/// under Atoll as under `docker run`.
public enum SecurityDefaults {
    /// Docker's default capability set (moby `oci/caps/defaults.go`), in kernel order.
    public static let defaultCapabilities: [String] = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
        "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE",
        "CAP_SETFCAP",
    ]

    /// Every Linux capability, 0 (`CAP_CHOWN`) to 40 (`CAP_CHECKPOINT_RESTORE`), in kernel order
    /// (`include/uapi/linux/capability.h`): what `--privileged` and `--cap-add ALL` grant.
    public static let allCapabilities: [String] = [
        "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
        "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
        "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
        "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
        "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ]

    private static let kernelOrder: [String: Int] = Dictionary(
        uniqueKeysWithValues: allCapabilities.enumerated().map { ($0.element, $0.offset) })

    /// The capability set for `--cap-add`, `--cap-drop` and `--privileged`, with Docker's rules
    /// (moby `oci/caps/utils.go` `TweakCapabilities`): names are case-insensitive and may omit the
    /// `CAP_` prefix; `--privileged` grants everything; `ALL` in `adding` grants everything except
    /// what `dropping` names; `ALL` in `dropping` starts from nothing and grants only `adding`;
    /// otherwise the default set minus `dropping` plus `adding`. The result is in kernel order
    /// without duplicates. An unknown name throws, even with `--privileged`.
    public static func capabilities(adding: [String], dropping: [String], privileged: Bool) throws -> [String] {
        let add = try adding.map(normalizeCapability)
        let drop = try dropping.map(normalizeCapability)
        if privileged { return allCapabilities }
        var result: Set<String>
        if add.contains("ALL") {
            result = Set(allCapabilities).subtracting(drop)
        } else if drop.contains("ALL") {
            result = Set(add)
        } else {
            result = Set(defaultCapabilities).subtracting(drop).union(add)
        }
        return result.sorted { (kernelOrder[$0] ?? Int.max) < (kernelOrder[$1] ?? Int.max) }
    }

    /// `chown` and `CAP_CHOWN` both become `CAP_CHOWN`; `all` becomes `ALL`.
    private static func normalizeCapability(_ name: String) throws -> String {
        let upper = name.trimmingCharacters(in: .whitespaces).uppercased()
        if upper == "ALL" { return upper }
        let full = upper.hasPrefix("CAP_") ? upper : "CAP_" + upper
        guard kernelOrder[full] != nil else {
            throw AtollError.invalidArgument("unknown capability \"\(name)\"")
        }
        return full
    }

    /// Paths Docker hides from a container (moby `oci/defaults.go`): a directory is covered with an
    /// empty read-only tmpfs, a file with /dev/null. They leak host information or hardware
    /// controls (`/proc/kcore`, `/proc/keys`, `/sys/firmware`, RAPL energy counters in powercap).
    public static let maskedPaths: [String] = [
        "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]

    /// Paths Docker mounts read-only in a container (moby `oci/defaults.go`): kernel tunables and
    /// triggers that are not namespaced.
    public static let readonlyPaths: [String] = [
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
    ]

    private static let allow = "SCMP_ACT_ALLOW"
    private static let deny = "SCMP_ACT_ERRNO"
    private static let eperm: UInt32 = 1
    private static let enosys: UInt32 = 38
    private static let addressFamilyALG: UInt64 = 38
    private static let addressFamilyVSOCK: UInt64 = 40
    /// CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
    /// CLONE_NEWCGROUP: the flags that create namespaces.
    private static let namespaceCloneFlags: UInt64 = 0x7E02_0000

    /// Docker's default seccomp profile (moby `profiles/seccomp/default.json`, now
    /// github.com/moby/profiles) for a container holding `capabilities`, resolved the way dockerd
    /// resolves it: the architectures of this host, the rules whose `includes.caps` the container
    /// holds and not those whose `excludes.caps` it holds. Everything not allowed fails with EPERM.
    ///
    /// Without `CAP_SYS_ADMIN`, `clone` is allowed only without namespace flags and `clone3`
    /// (whose flags seccomp cannot inspect) fails with ENOSYS so that libc falls back to `clone`.
    /// `socket` is allowed for every address family except AF_ALG (38) and AF_VSOCK (40).
    public static func seccompProfile(capabilities: [String]) -> Seccomp {
        let caps = Set(
            capabilities.map { name -> String in
                let upper = name.uppercased()
                return upper.hasPrefix("CAP_") ? upper : "CAP_" + upper
            })
        var rules: [SeccompSyscall] = [
            SeccompSyscall(names: allowedSyscalls, action: allow),
            // moby includes these from kernel 4.8 on, where ptrace no longer bypasses seccomp.
            SeccompSyscall(names: ["process_vm_readv", "process_vm_writev", "ptrace"], action: allow),
            SeccompSyscall(
                names: ["socket"], action: allow,
                args: [SeccompArg(index: 0, value: addressFamilyALG, op: "SCMP_CMP_LT")]),
            SeccompSyscall(
                names: ["socket"], action: allow,
                args: [SeccompArg(index: 0, value: addressFamilyALG + 1, op: "SCMP_CMP_EQ")]),
            SeccompSyscall(
                names: ["socket"], action: allow,
                args: [SeccompArg(index: 0, value: addressFamilyVSOCK, op: "SCMP_CMP_GT")]),
        ]
        // PER_LINUX, UNAME26, PER_LINUX32, PER_LINUX32|UNAME26, and 0xffffffff (query).
        for persona: UInt64 in [0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff] {
            rules.append(
                SeccompSyscall(
                    names: ["personality"], action: allow,
                    args: [SeccompArg(index: 0, value: persona, op: "SCMP_CMP_EQ")]
                ))
        }
        rules.append(contentsOf: architectureRules)
        if caps.contains("CAP_DAC_READ_SEARCH") {
            rules.append(SeccompSyscall(names: ["open_by_handle_at"], action: allow))
        }
        if caps.contains("CAP_SYS_ADMIN") {
            rules.append(SeccompSyscall(names: sysAdminSyscalls, action: allow))
        } else {
            rules.append(
                SeccompSyscall(
                    names: ["clone"], action: allow,
                    args: [
                        SeccompArg(
                            index: cloneFlagsIndex, value: namespaceCloneFlags, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ")
                    ]))
            rules.append(SeccompSyscall(names: ["clone3"], action: deny, errnoRet: enosys))
        }
        for (capability, names) in capabilitySyscalls where caps.contains(capability) {
            rules.append(SeccompSyscall(names: names, action: allow))
        }
        return Seccomp(
            defaultAction: deny, defaultErrnoRet: eperm, architectures: hostArchitectures, syscalls: rules)
    }

    /// The seccomp ABIs of this host and the compatibility ABIs it can run (moby's `archMap`).
    static var hostArchitectures: [String]? {
        #if arch(x86_64)
            return ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        #elseif arch(arm64)
            return ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
        #elseif arch(s390x)
            return ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"]
        #else
            return nil
        #endif
    }

    /// clone's flags are its first argument, except on s390, which swaps the first two.
    private static var cloneFlagsIndex: UInt {
        #if arch(s390x)
            return 1
        #else
            return 0
        #endif
    }

    /// System calls only some architectures have, allowed on those architectures.
    private static var architectureRules: [SeccompSyscall] {
        #if arch(x86_64)
            return [
                SeccompSyscall(names: ["arch_prctl"], action: allow),
                SeccompSyscall(names: ["modify_ldt"], action: allow),
            ]
        #elseif arch(arm64)
            return [
                SeccompSyscall(
                    names: [
                        "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush",
                        "set_tls",
                    ], action: allow)
            ]
        #elseif arch(s390x)
            return [
                SeccompSyscall(
                    names: ["s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"], action: allow)
            ]
        #else
            return []
        #endif
    }

    /// What `CAP_SYS_ADMIN` adds: mounting, namespaces, BPF, perf, quotas, host and domain names.
    static let sysAdminSyscalls: [String] = [
        "bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie",
        "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr", "mount", "mount_setattr", "move_mount",
        "open_tree", "perf_event_open", "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns",
        "syslog", "umount", "umount2", "unshare",
    ]

    /// What each other capability adds, in moby's order.
    static let capabilitySyscalls: [(String, [String])] = [
        ("CAP_SYS_BOOT", ["reboot"]),
        ("CAP_SYS_CHROOT", ["chroot"]),
        ("CAP_SYS_MODULE", ["delete_module", "init_module", "finit_module"]),
        ("CAP_SYS_PACCT", ["acct"]),
        (
            "CAP_SYS_PTRACE",
            ["kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"]
        ),
        ("CAP_SYS_RAWIO", ["iopl", "ioperm"]),
        ("CAP_SYS_TIME", ["settimeofday", "stime", "clock_settime", "clock_settime64"]),
        ("CAP_SYS_TTY_CONFIG", ["vhangup"]),
        ("CAP_SYS_NICE", ["get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"]),
        ("CAP_SYSLOG", ["syslog"]),
        ("CAP_BPF", ["bpf"]),
        ("CAP_PERFMON", ["perf_event_open"]),
    ]

    /// The calls every container may make: moby's unconditional allow list. Names a kernel or
    /// libseccomp does not know are skipped by the runtime, so newer calls are listed too.
    static let allowedSyscalls: [String] = [
        "accept", "accept4", "access", "add_key", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget",
        "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres",
        "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
        "close", "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
        "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait",
        "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat",
        "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
        "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr",
        "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64",
        "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv",
        "futex_wake", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid",
        "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid",
        "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid",
        "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid", "getsockname", "getsockopt",
        "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr", "getxattrat",
        "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl",
        "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set",
        "io_setup", "io_submit", "ipc", "keyctl", "kill", "landlock_add_rule", "landlock_create_ruleset",
        "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listmount",
        "listxattr", "listxattrat", "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat",
        "lstat64", "madvise", "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore",
        "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
        "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
        "mq_timedsend_time64", "mq_unlink", "mremap", "mseal", "msgctl", "msgget", "msgrcv", "msgsnd", "msync",
        "munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open",
        "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc",
        "pkey_free", "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2",
        "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read",
        "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64",
        "recvmsg", "remap_file_pages", "removexattr", "removexattrat", "rename", "renameat", "renameat2",
        "request_key", "restart_syscall", "riscv_hwprobe", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
        "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
        "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr", "sched_getparam",
        "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
        "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr", "sched_setparam",
        "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget", "semop", "semtimedop",
        "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto", "setfsgid",
        "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setitimer",
        "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
        "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt",
        "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr", "setxattrat", "shmat", "shmctl",
        "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn",
        "socketcall", "socketpair", "splice", "stat", "stat64", "statfs", "statfs64", "statmount", "statx",
        "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time",
        "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
        "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
        "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink",
        "unlinkat", "uretprobe", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4",
        "waitid", "waitpid", "write", "writev",
    ]
}
