/// A 64-bit hash that is the same in every process, on every machine, in every run.
///
/// Swift's `Hasher` is seeded per process, so it cannot place keys on a hash ring that must agree
/// across restarts and between the proxy and the simulator. This is FNV-1a over the bytes followed by
/// the MurmurHash3 64-bit finalizer, which gives FNV's simplicity with full avalanche on the output
/// (every input bit flips each output bit with probability close to 1/2), as ring and table placement
/// need. It is not a defence against chosen keys.
public enum StableHash {
    /// The hash of a byte sequence.
    @inlinable
    public static func hash(bytes: some Sequence<UInt8>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325  // FNV-1a offset basis
        for byte in bytes {
            h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3  // FNV-1a 64-bit prime
        }
        return self.mix(h)
    }

    /// The hash of a string's UTF-8 bytes.
    @inlinable
    public static func hash(_ string: String) -> UInt64 {
        var string = string
        return string.withUTF8 { self.hash(bytes: $0) }
    }

    /// The hash of a 64-bit integer (an IPv4 address, a client number).
    @inlinable
    public static func hash(_ value: UInt64) -> UInt64 {
        self.mix(value ^ 0xCBF2_9CE4_8422_2325)
    }

    /// Combines two hashes into one; not symmetric (`combine(a, b) != combine(b, a)` in general).
    @inlinable
    public static func combine(_ a: UInt64, _ b: UInt64) -> UInt64 {
        self.mix(a ^ (b &+ 0x9E37_79B9_7F4A_7C15 &+ (a << 6) &+ (a >> 2)))
    }

    /// The MurmurHash3 `fmix64` finalizer: a bijection on 64-bit values with full avalanche.
    @inlinable
    public static func mix(_ value: UInt64) -> UInt64 {
        var k = value
        k ^= k >> 33
        k &*= 0xFF51_AFD7_ED55_8CCD
        k ^= k >> 33
        k &*= 0xC4CE_B9FE_1A85_EC53
        k ^= k >> 33
        return k
    }
}
