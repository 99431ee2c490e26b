/*
 * Rules only yara-python runs: ClamAV's YARA engine skips rules whose
 * condition has no strings.
 */

rule Assay_Test_ConditionOnly
{
    meta:
        description = "Assay's test file for the YARA path: the 16-byte header ASSAY-YARA-TEST! and nothing else"
        family = "test"
    condition:
        filesize == 16 and uint32be(0) == 0x41535341 and uint32be(4) == 0x592d5941
            and uint32be(8) == 0x52412d54 and uint32be(12) == 0x45535421
}
