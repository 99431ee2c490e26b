/*
 * Rules only yara-python runs: ClamAV's YARA engine skips rules that use
 * modules. Files with an import are matched on executables only.
 */

import "pe"

rule Assay_PE_ReflectiveLoader
{
    meta:
        description = "Windows DLL exporting ReflectiveLoader (Meterpreter / Cobalt Strike style reflective injection)"
        family = "implant"
    condition:
        pe.is_pe and pe.is_dll() and pe.exports("ReflectiveLoader")
}
