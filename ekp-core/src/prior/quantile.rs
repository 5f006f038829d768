//! The standard normal quantile `Φ⁻¹` (for the constrained quantiles of a
//! prior).

/// The standard normal quantile `Φ⁻¹(p)` (Wichura's algorithm AS 241, relative error
/// about 1e-16).
///
/// `p = 0` gives `−∞`, `p = 1` gives `+∞`, `p` outside `[0, 1]` or NaN gives NaN.
pub fn standard_normal_quantile(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180625 - q * q;
        return q * poly(&AS241_A, r) / poly(&AS241_B, r);
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let x = if r <= 5.0 {
        let r = r - 1.6;
        poly(&AS241_C, r) / poly(&AS241_D, r)
    } else {
        let r = r - 5.0;
        poly(&AS241_E, r) / poly(&AS241_F, r)
    };
    if q < 0.0 { -x } else { x }
}

/// `c[0] + c[1] x + ... + c[7] x⁷` by Horner's rule.
fn poly(c: &[f64; 8], x: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &ci| acc * x + ci)
}

// Coefficients of AS 241 (PPND16), M. J. Wichura, Applied Statistics 37 (1988) 477–484.
#[allow(clippy::excessive_precision)]
const AS241_A: [f64; 8] = [
    3.387_132_872_796_366_608_0,
    1.331_416_678_917_843_774_5e2,
    1.971_590_950_306_551_442_7e3,
    1.373_169_376_550_946_112_5e4,
    4.592_195_393_154_987_145_7e4,
    6.726_577_092_700_870_085_3e4,
    3.343_057_558_358_812_810_5e4,
    2.509_080_928_730_122_672_7e3,
];
#[allow(clippy::excessive_precision)]
const AS241_B: [f64; 8] = [
    1.0,
    4.231_333_070_160_091_125_2e1,
    6.871_870_074_920_579_083_0e2,
    5.394_196_021_424_751_107_7e3,
    2.121_379_430_158_659_586_7e4,
    3.930_789_580_009_271_061_0e4,
    2.872_908_573_572_194_267_4e4,
    5.226_495_278_852_854_561_0e3,
];
#[allow(clippy::excessive_precision)]
const AS241_C: [f64; 8] = [
    1.423_437_110_749_683_577_34,
    4.630_337_846_156_545_295_90,
    5.769_497_221_460_691_405_50,
    3.647_848_324_763_204_605_04,
    1.270_458_252_452_368_382_58,
    2.417_807_251_774_506_117_70e-1,
    2.272_384_498_926_918_458_33e-2,
    7.745_450_142_783_414_076_40e-4,
];
#[allow(clippy::excessive_precision)]
const AS241_D: [f64; 8] = [
    1.0,
    2.053_191_626_637_758_821_87,
    1.676_384_830_183_803_849_40,
    6.897_673_349_851_000_045_50e-1,
    1.481_039_764_274_800_745_90e-1,
    1.519_866_656_361_645_719_66e-2,
    5.475_938_084_995_344_946_00e-4,
    1.050_750_071_644_416_843_24e-9,
];
#[allow(clippy::excessive_precision)]
const AS241_E: [f64; 8] = [
    6.657_904_643_501_103_777_20,
    5.463_784_911_164_114_369_90,
    1.784_826_539_917_291_335_80,
    2.965_605_718_285_048_912_30e-1,
    2.653_218_952_657_612_309_30e-2,
    1.242_660_947_388_078_438_60e-3,
    2.711_555_568_743_487_578_15e-5,
    2.010_334_399_292_288_132_65e-7,
];
#[allow(clippy::excessive_precision)]
const AS241_F: [f64; 8] = [
    1.0,
    5.998_322_065_558_879_376_90e-1,
    1.369_298_809_227_358_053_10e-1,
    1.487_536_129_085_061_485_25e-2,
    7.868_691_311_456_132_591_00e-4,
    1.846_318_317_510_054_681_80e-5,
    1.421_511_758_316_445_888_70e-7,
    2.044_263_103_389_939_785_64e-15,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Φ(x) for x ≤ 0 (and 1 − Φ(x) for x > 0: the tail beyond |x|) by Simpson's rule.
    fn normal_tail(x: f64) -> f64 {
        let a = x.abs();
        let (lo, hi) = (a, a + 12.0);
        let n = 200_000;
        let h = (hi - lo) / n as f64;
        let phi = |t: f64| (-0.5 * t * t).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let mut s = phi(lo) + phi(hi);
        for i in 1..n {
            let t = lo + i as f64 * h;
            s += if i % 2 == 1 { 4.0 } else { 2.0 } * phi(t);
        }
        s * h / 3.0
    }

    #[test]
    fn quantile_inverts_the_normal_cdf() {
        for &p in &[
            1e-300, 1e-100, 1e-20, 1e-8, 1e-3, 0.02, 0.074, 0.076, 0.2, 0.4, 0.5, 0.6, 0.9, 0.99,
            0.999_999,
        ] {
            let x = standard_normal_quantile(p);
            let tail = normal_tail(x);
            let (want, got) = if x <= 0.0 { (p, tail) } else { (1.0 - p, tail) };
            if x.abs() < 1e-12 {
                assert_eq!(p, 0.5);
                continue;
            }
            assert!(
                ((got - want) / want).abs() < 1e-11 * (1.0 + x.abs()),
                "p = {p}: x = {x}, tail {got} vs {want}"
            );
        }
    }

    #[test]
    fn quantile_known_values_and_symmetry() {
        let cases = [
            (0.975, 1.959_963_984_540_054),
            (0.95, 1.644_853_626_951_472_2),
            (0.995, 2.575_829_303_548_900_4),
            (0.999, 3.090_232_306_167_813_5),
            (0.841_344_746_068_542_9, 1.0),
        ];
        for (p, want) in cases {
            let got = standard_normal_quantile(p);
            assert!(
                (got - want).abs() < 1e-14 * want.abs().max(1.0),
                "{p}: {got} vs {want}"
            );
            assert!((standard_normal_quantile(1.0 - p) + want).abs() < 1e-13);
        }
        assert_eq!(standard_normal_quantile(0.5), 0.0);
        assert_eq!(standard_normal_quantile(0.0), f64::NEG_INFINITY);
        assert_eq!(standard_normal_quantile(1.0), f64::INFINITY);
        assert!(standard_normal_quantile(-0.1).is_nan());
        assert!(standard_normal_quantile(1.1).is_nan());
        assert!(standard_normal_quantile(f64::NAN).is_nan());
    }
}
