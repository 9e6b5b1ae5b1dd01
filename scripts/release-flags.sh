# Sourced by every script that builds LBLab in release mode, so that the binaries the README runs and
# the ones bench/ measures are built alike.
#
# -enforce-exclusivity=unchecked drops the runtime's dynamic exclusivity checks (swift_beginAccess and
# its thread-local access set) from every module, SwiftNIO's included. The compile-time checks stay,
# and debug builds, where scripts/test.sh runs every test, keep the dynamic ones too, so a violation
# still traps there. On this machine the checks were over a quarter of loadgen's user time per request
# and a fifth of the proxy's, nearly all on SwiftNIO's objects (bench/RESULTS.md). A Package.swift
# setting cannot reach a dependency's modules, hence a flag on the command line.
release_swiftc_flags=(-enforce-exclusivity=unchecked)

# Whole-program optimization, for the binaries scripts/build-release.sh builds: every module compiled
# for cross-module optimization and linked with LLVM's full link-time optimization, so that the calls
# between SwiftNIO's modules and ours on every read and write can be inlined and their reference
# counting dropped. loadgen's user time per request fell by a fifth and the proxy's by a tenth
# (bench/RESULTS.md). SwiftPM still calls its option experimental; the tests run debug builds without
# it, and the quickstart runs the release build end to end. The link of each executable takes a few
# minutes longer.
release_build_flags=(-Xswiftc -cross-module-optimization --experimental-lto-mode=full)

# The same flags as ordo-one/benchmark's plugin takes them: `--Xswiftc FLAG` without its dash. The
# benchmarks measure LBCore's and LBStore's own code against C peers, and keep the flags they were
# measured with (no whole-program optimization).
release_benchmark_flags=()
for flag in "${release_swiftc_flags[@]}"; do release_benchmark_flags+=(--Xswiftc "${flag#-}"); done
