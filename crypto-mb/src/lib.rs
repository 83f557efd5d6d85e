//! A safe binding to the multi-buffer NIST P-256 functions of Intel's crypto_mb (part of the
//! Intel Cryptography Primitives Library, formerly IPP Crypto): eight public keys, or eight
//! ECDH shared secrets, per call, on AVX-512 IFMA.
//!
//! The library is opened at run time (`dlopen`), never linked: a build needs nothing installed,
//! and a machine without the library or without the instructions gets a [`Unavailable`] reason
//! from [`NistP256::shared`] so that its caller falls back to its portable implementation.
//!
//! Where it is looked for, in order (see [`NistP256::detect`]):
//! 1. `AVISO_CRYPTO_MB`: the path of `libcrypto_mb.so.13`, or `off` to never use it;
//! 2. `ipp-crypto/lib/` in a directory above the running executable (the project's
//!    `scripts/test.d/ipp-crypto.sh` installs PyPI's `ipp-crypto` wheel into `target/ipp-crypto`);
//! 3. `libcrypto_mb.so.13` through the dynamic loader's own search (`LD_LIBRARY_PATH`, ldconfig).
//!
//! The compiler runtime the library links against (`libintlc.so.5`, `libirng.so`, `libimf.so`,
//! `libsvml.so`, PyPI's `intel-cmplr-lib-rt`) is opened first from the same directory when it is
//! there: the loader then resolves the library's dependencies to those already-open objects.
//!
//! Side channels: Intel designs the library's secret-processing functions for constant
//! execution time and checks them with instruction- and memory-trace tests (PINCER), see
//! <https://intel.github.io/cryptography-primitives/security-validation-of-library-functions.html>.
//! This crate only moves bytes in and out, and wipes every secret it holds ([`Scalar`] and
//! [`SharedSecret`] zeroize on drop).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW, Symbol};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Operations per call.
pub const LANES: usize = 8;
/// The library's file name (its soname); the number follows the library's ABI.
pub const LIBRARY_NAME: &str = "libcrypto_mb.so.13";
/// The environment variable naming the library's path, or `off`.
pub const ENV_VAR: &str = "AVISO_CRYPTO_MB";
/// The compiler runtime libcrypto_mb needs, in the order they depend on each other.
const RUNTIME: [&str; 4] = ["libintlc.so.5", "libirng.so", "libimf.so", "libsvml.so"];
/// `MBX_ALGO_EC_NIST_P256` of `crypto_mb/cpu_features.h`.
const MBX_ALGO_EC_NIST_P256: i32 = 5;
/// `MBX_WIDTH_MB8`.
const MBX_WIDTH_MB8: u64 = 8;

/// The group order n of P-256, big-endian.
const ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
/// The field prime p of P-256, big-endian.
const PRIME: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

/// Why the multi-buffer backend is not in use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("turned off ({ENV_VAR}={0})")]
    Disabled(String),
    #[error("the CPU lacks {0} (crypto_mb needs AVX-512 F, DQ, BW, IFMA, VBMI2 and BMI2)")]
    Cpu(&'static str),
    #[error("only x86_64 has it")]
    Architecture,
    #[error("{LIBRARY_NAME} was not found (looked in: {0}); set {ENV_VAR} to its path")]
    NotFound(String),
    #[error("{path} could not be opened: {error}")]
    Open { path: String, error: String },
    #[error("{path} lacks the function {symbol}: {error}")]
    Symbol {
        path: String,
        symbol: &'static str,
        error: String,
    },
    #[error("{0} says it cannot run its 8-lane P-256 on this CPU")]
    NotApplicable(String),
}

/// Why one lane of a call failed: crypto_mb's 4-bit status of that lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LaneError {
    /// `MBX_STATUS_MISMATCH_PARAM_ERR`: the peer's point is not on the curve, or the scalar is out of range.
    #[error("crypto_mb rejected the input (not a point on P-256 or scalar out of range)")]
    Mismatch,
    /// Any other status (null pointer, unsupported ISA, ...): a bug or a broken library.
    #[error("crypto_mb failed with status {0}")]
    Status(u32),
}

/// A private scalar in `[1, n)`, as crypto_mb takes it: four 64-bit limbs, least significant first.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Scalar([u64; 4]);

impl Scalar {
    /// The scalar of a 32-byte big-endian string, or `None` unless `1 <= k < n`.
    ///
    /// For fresh keys, fill the bytes from a CSPRNG and try again on `None` (probability 2⁻³²):
    /// rejection sampling keeps the distribution uniform.
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Option<Self> {
        if bytes.iter().all(|&b| b == 0) || bytes.as_slice() >= ORDER.as_slice() {
            return None;
        }
        Some(Self(limbs(bytes)))
    }
}

/// A point of P-256 in affine coordinates, as crypto_mb takes and gives it (regular, not
/// Montgomery, domain; little-endian limbs).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AffinePoint {
    x: [u64; 4],
    y: [u64; 4],
}

impl AffinePoint {
    /// The point of an uncompressed SEC1 encoding (`04 | x | y`), or `None` if it is not one with
    /// coordinates below p. Whether it lies on the curve is checked by [`NistP256::shared_secrets`].
    pub fn from_uncompressed(bytes: &[u8; 65]) -> Option<Self> {
        let (x, y) = (&bytes[1..33], &bytes[33..]);
        if bytes[0] != 0x04 || x >= PRIME.as_slice() || y >= PRIME.as_slice() {
            return None;
        }
        let x: &[u8; 32] = x.try_into().ok()?;
        let y: &[u8; 32] = y.try_into().ok()?;
        Some(Self {
            x: limbs(x),
            y: limbs(y),
        })
    }

    /// Its uncompressed SEC1 encoding (`04 | x | y`).
    pub fn to_uncompressed(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        out[0] = 0x04;
        write_be(&self.x, &mut out[1..33]);
        write_be(&self.y, &mut out[33..]);
        out
    }
}

/// An ECDH shared secret: the x coordinate of the shared point, big-endian (SEC1, RFC 8291).
pub type SharedSecret = Zeroizing<[u8; 32]>;

type PublicKeyFn = unsafe extern "C" fn(
    pa_pubx: *const *mut u64,
    pa_puby: *const *mut u64,
    pa_pubz: *const *mut u64,
    pa_skey: *const *const u64,
    buffer: *mut u8,
) -> u32;
type EcdhFn = unsafe extern "C" fn(
    pa_shared_key: *const *mut u8,
    pa_skey: *const *const u64,
    pa_pubx: *const *const u64,
    pa_puby: *const *const u64,
    pa_pubz: *const *const u64,
    buffer: *mut u8,
) -> u32;
type CpuFeaturesFn = unsafe extern "C" fn() -> u64;
type ApplicableFn = unsafe extern "C" fn(u64) -> i32;
type AlgoInfoFn = unsafe extern "C" fn(i32) -> u64;

/// crypto_mb's P-256, opened and checked. Its functions are reentrant: share it between threads.
pub struct NistP256 {
    public_key: PublicKeyFn,
    ecdh: EcdhFn,
    path: PathBuf,
    // The function pointers above point into these: they stay open as long as `self` lives.
    _library: Library,
    _runtime: Vec<Library>,
}

impl std::fmt::Debug for NistP256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NistP256")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl NistP256 {
    /// The process's instance, detected once ([`NistP256::detect`]); the reason when there is none.
    pub fn shared() -> Result<&'static Self, &'static Unavailable> {
        static SHARED: OnceLock<Result<NistP256, Unavailable>> = OnceLock::new();
        SHARED.get_or_init(Self::detect).as_ref()
    }

    /// Checks the CPU, then finds and opens the library (the order is in the crate's doc).
    pub fn detect() -> Result<Self, Unavailable> {
        let configured = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty());
        let value = configured.as_deref().map(OsStr::to_string_lossy);
        if let Some(value) = value.filter(|v| {
            matches!(
                v.to_ascii_lowercase().as_str(),
                "off" | "0" | "false" | "no"
            )
        }) {
            return Err(Unavailable::Disabled(value.into_owned()));
        }
        cpu_supports()?;
        if let Some(path) = configured {
            return Self::open(Path::new(&path));
        }
        let mut looked = Vec::new();
        if let Ok(exe) = std::env::current_exe() {
            for dir in exe.ancestors().skip(1).take(4) {
                let candidate = dir.join("ipp-crypto/lib").join(LIBRARY_NAME);
                if candidate.is_file() {
                    return Self::open(&candidate);
                }
                looked.push(candidate.display().to_string());
            }
        }
        match Self::open(Path::new(LIBRARY_NAME)) {
            Err(Unavailable::Open { .. }) => {
                looked.push("the dynamic loader's search path".into());
                Err(Unavailable::NotFound(looked.join(", ")))
            }
            other => other,
        }
    }

    /// Opens the library at `path` (a bare file name goes through the loader's search), after
    /// the compiler runtime beside it, and checks that it runs its 8-lane P-256 here.
    pub fn open(path: &Path) -> Result<Self, Unavailable> {
        cpu_supports()?;
        let shown = path.display().to_string();
        let mut runtime = Vec::new();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            for name in RUNTIME {
                let dependency = dir.join(name);
                if dependency.is_file() {
                    runtime.push(open_library(dependency.as_os_str())?);
                }
            }
        }
        let library = open_library(path.as_os_str())?;
        // SAFETY: the signatures are those of crypto_mb/ec_nistp256.h and cpu_features.h
        // (`int64u` = u64, `int8u` = u8, `mbx_status` = u32, `enum MBX_ALGO` = int).
        let (public_key, ecdh, features, applicable, algo_info) = unsafe {
            (
                symbol::<PublicKeyFn>(&library, &shown, "mbx_nistp256_ecpublic_key_mb8")?,
                symbol::<EcdhFn>(&library, &shown, "mbx_nistp256_ecdh_mb8")?,
                symbol::<CpuFeaturesFn>(&library, &shown, "mbx_get_cpu_features")?,
                symbol::<ApplicableFn>(&library, &shown, "mbx_is_crypto_mb_applicable")?,
                symbol::<AlgoInfoFn>(&library, &shown, "mbx_get_algo_info")?,
            )
        };
        // SAFETY: plain functions without arguments to check.
        let runs_here = unsafe {
            applicable(features()) != 0 && algo_info(MBX_ALGO_EC_NIST_P256) & MBX_WIDTH_MB8 != 0
        };
        if !runs_here {
            return Err(Unavailable::NotApplicable(shown));
        }
        Ok(Self {
            public_key,
            ecdh,
            path: path.to_owned(),
            _library: library,
            _runtime: runtime,
        })
    }

    /// Where the library was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The public keys `k·G` of eight scalars, in affine coordinates.
    pub fn public_keys(
        &self,
        scalars: [&Scalar; LANES],
    ) -> [Result<AffinePoint, LaneError>; LANES] {
        let mut xs = [[0u64; 4]; LANES];
        let mut ys = [[0u64; 4]; LANES];
        let x_out = xs.each_mut().map(|x| x.as_mut_ptr());
        let y_out = ys.each_mut().map(|y| y.as_mut_ptr());
        let keys: [*const u64; LANES] = scalars.map(|s| s.0.as_ptr());
        // SAFETY: every pointer addresses four writable (outputs) or readable (scalars) u64s that
        // outlive the call; a null Z array asks for affine coordinates (the library then does
        // the inversion itself, vectorized over the eight lanes); no scratch buffer is needed.
        let status = unsafe {
            (self.public_key)(
                x_out.as_ptr(),
                y_out.as_ptr(),
                std::ptr::null(),
                keys.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        std::array::from_fn(|lane| {
            lane_status(status, lane).map(|()| AffinePoint {
                x: xs[lane],
                y: ys[lane],
            })
        })
    }

    /// The ECDH shared secrets of eight scalars with eight peers' public keys.
    pub fn shared_secrets(
        &self,
        scalars: [&Scalar; LANES],
        peers: [&AffinePoint; LANES],
    ) -> [Result<SharedSecret, LaneError>; LANES] {
        let mut secrets: [SharedSecret; LANES] = std::array::from_fn(|_| Zeroizing::new([0; 32]));
        let outputs = secrets.each_mut().map(|s| s.as_mut_ptr());
        let keys: [*const u64; LANES] = scalars.map(|s| s.0.as_ptr());
        let xs: [*const u64; LANES] = peers.map(|p| p.x.as_ptr());
        let ys: [*const u64; LANES] = peers.map(|p| p.y.as_ptr());
        // SAFETY: as in `public_keys`; each output addresses 32 writable bytes; a null Z array
        // says the peers' points are affine.
        let status = unsafe {
            (self.ecdh)(
                outputs.as_ptr(),
                keys.as_ptr(),
                xs.as_ptr(),
                ys.as_ptr(),
                std::ptr::null(),
                std::ptr::null_mut(),
            )
        };
        let mut lane = 0;
        secrets.map(|secret| {
            let result = lane_status(status, lane).map(|()| secret);
            lane += 1;
            result
        })
    }
}

fn lane_status(status: u32, lane: usize) -> Result<(), LaneError> {
    match (status >> (4 * lane)) & 0xf {
        0 => Ok(()),
        1 => Err(LaneError::Mismatch),
        other => Err(LaneError::Status(other)),
    }
}

fn open_library(path: &OsStr) -> Result<Library, Unavailable> {
    // SAFETY: opening runs the library's initializers; crypto_mb's and the Intel runtime's only
    // set up their CPU dispatch.
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map_err(|error| Unavailable::Open {
        path: path.to_string_lossy().into_owned(),
        error: error.to_string(),
    })
}

/// # Safety
/// `T` must be the function's true signature.
unsafe fn symbol<T: Copy>(
    library: &Library,
    path: &str,
    name: &'static str,
) -> Result<T, Unavailable> {
    // SAFETY: forwarded to the caller.
    let found: Result<Symbol<T>, _> = unsafe { library.get(name.as_bytes()) };
    found.map(|s| *s).map_err(|error| Unavailable::Symbol {
        path: path.to_owned(),
        symbol: name,
        error: error.to_string(),
    })
}

#[cfg(target_arch = "x86_64")]
fn cpu_supports() -> Result<(), Unavailable> {
    // MBX_AVX512_GENERAL_ISA of crypto_mb/cpu_features.h (the library checks again on open).
    let needed = [
        ("AVX-512 F", std::arch::is_x86_feature_detected!("avx512f")),
        (
            "AVX-512 DQ",
            std::arch::is_x86_feature_detected!("avx512dq"),
        ),
        (
            "AVX-512 BW",
            std::arch::is_x86_feature_detected!("avx512bw"),
        ),
        (
            "AVX-512 IFMA",
            std::arch::is_x86_feature_detected!("avx512ifma"),
        ),
        (
            "AVX-512 VBMI2",
            std::arch::is_x86_feature_detected!("avx512vbmi2"),
        ),
        ("BMI2", std::arch::is_x86_feature_detected!("bmi2")),
    ];
    match needed.iter().find(|(_, present)| !present) {
        Some((name, _)) => Err(Unavailable::Cpu(name)),
        None => Ok(()),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_supports() -> Result<(), Unavailable> {
    Err(Unavailable::Architecture)
}

/// Whether this CPU has the instructions crypto_mb's P-256 needs (the library aside).
pub fn cpu_has_the_instructions() -> Result<(), Unavailable> {
    cpu_supports()
}

fn limbs(be: &[u8; 32]) -> [u64; 4] {
    std::array::from_fn(|i| {
        let start = 32 - 8 * (i + 1);
        let mut limb = [0u8; 8];
        limb.copy_from_slice(&be[start..start + 8]);
        u64::from_be_bytes(limb)
    })
}

fn write_be(limbs: &[u64; 4], out: &mut [u8]) {
    for (i, limb) in limbs.iter().enumerate() {
        let start = 32 - 8 * (i + 1);
        out[start..start + 8].copy_from_slice(&limb.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_outside_one_to_n_are_refused() {
        assert!(Scalar::from_be_bytes(&[0; 32]).is_none());
        assert!(Scalar::from_be_bytes(&ORDER).is_none());
        assert!(Scalar::from_be_bytes(&[0xff; 32]).is_none());
        let mut below = ORDER;
        below[31] -= 1;
        assert!(Scalar::from_be_bytes(&below).is_some());
        let mut one = [0; 32];
        one[31] = 1;
        assert_eq!(Scalar::from_be_bytes(&one).map(|s| s.0), Some([1, 0, 0, 0]));
    }

    #[test]
    fn points_round_trip_their_encoding_and_refuse_bad_ones() {
        let mut encoded = [0u8; 65];
        encoded[0] = 0x04;
        for (i, b) in encoded[1..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let point = AffinePoint::from_uncompressed(&encoded).expect("coordinates below p");
        assert_eq!(
            point.x[0],
            u64::from_be_bytes([24, 25, 26, 27, 28, 29, 30, 31])
        );
        assert_eq!(point.to_uncompressed(), encoded);
        encoded[0] = 0x03;
        assert!(AffinePoint::from_uncompressed(&encoded).is_none());
        let mut too_big = [0xffu8; 65];
        too_big[0] = 0x04;
        assert!(AffinePoint::from_uncompressed(&too_big).is_none());
    }

    #[test]
    fn a_missing_library_is_a_reason_not_a_crash() {
        let missing = NistP256::open(Path::new("/nonexistent/libcrypto_mb.so.13"));
        match missing {
            Err(Unavailable::Open { path, .. }) => assert!(path.starts_with("/nonexistent")),
            Err(Unavailable::Cpu(_) | Unavailable::Architecture) => {}
            other => panic!("expected a reason, got {other:?}"),
        }
    }

    #[test]
    fn a_lane_status_reads_its_own_nibble() {
        let status = 0x1 << 8 | 0x2 << 28;
        assert_eq!(lane_status(status, 0), Ok(()));
        assert_eq!(lane_status(status, 2), Err(LaneError::Mismatch));
        assert_eq!(lane_status(status, 7), Err(LaneError::Status(2)));
    }
}
