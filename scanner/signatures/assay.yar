/*
 * Assay's own YARA rules for common malicious patterns.
 *
 * ClamAV runs this file (as YARA.<rule>), so every rule here keeps to what
 * ClamAV's YARA engine understands: text, hex and regex strings, and
 * conditions over them. Rules that need modules or conditions without
 * strings live in yara/ and only yara-python runs them.
 *
 * Each rule must stay quiet on ordinary packages: match the malicious
 * construct itself, never a lone keyword that documentation or a security
 * tool could also contain.
 */

rule Assay_ReverseShell_Bash
{
    meta:
        description = "interactive shell redirected to a TCP/UDP socket (bash /dev/tcp reverse shell)"
        family = "reverse-shell"
    strings:
        $devtcp = /(ba|z|k)?sh\s+-i\s*[0-9]?>&\s*\/dev\/(tcp|udp)\/[A-Za-z0-9.\-]{1,253}\/[0-9]{1,5}/
        $exec = /exec\s+[0-9]+<>\/dev\/(tcp|udp)\/[A-Za-z0-9.\-]{1,253}\/[0-9]{1,5}/
    condition:
        any of them
}

rule Assay_ReverseShell_Netcat
{
    meta:
        description = "netcat handing a shell to a remote host (nc -e /bin/sh, mkfifo pipe)"
        family = "reverse-shell"
    strings:
        $nc_e = /\bn(c|cat|etcat)(\.traditional|\.openbsd)?\s+(-[A-Za-z]+\s+)*-[A-Za-z]*[ec]\s+\/bin\/(ba|z|k|da)?sh\b/
        $nc_e2 = /\bn(c|cat|etcat)(\.traditional|\.openbsd)?\s+[A-Za-z0-9.\-]{1,253}\s+[0-9]{1,5}\s+-e\s+\/bin\/(ba|z|k|da)?sh\b/
        $fifo = /mkfifo\s+\/tmp\/[A-Za-z0-9_.]+\s*;\s*cat\s+\/tmp\/[A-Za-z0-9_.]+\s*\|\s*\/bin\/(ba|z|k|da)?sh\s+-i/
    condition:
        any of them
}

rule Assay_ReverseShell_Python
{
    meta:
        description = "Python connecting a socket and binding a shell to it (pty.spawn or dup2 of stdio)"
        family = "reverse-shell"
    strings:
        $sock = "socket.socket("
        $connect = /\.connect\(\s*\(/
        $pty = /pty\.spawn\(\s*["']\/bin\/(ba|z|k|da)?sh["']/
        $dup = /os\.dup2\(\s*[A-Za-z_][A-Za-z0-9_.]*\.fileno\(\)\s*,\s*[012]\s*\)/
        $sub = /subprocess\.(call|Popen|run)\(\s*\[\s*["']\/bin\/(ba|z|k|da)?sh["']\s*,\s*["']-i["']/
    condition:
        $sock and $connect and ($pty or ($dup and $sub))
}

rule Assay_CryptoMiner_Stratum
{
    meta:
        description = "mining pool address in a stratum URL"
        family = "cryptominer"
    strings:
        $stratum = /stratum[0-9]?\+(tcp|ssl|tls|ws|wss):\/\/[A-Za-z0-9.\-]{1,253}:[0-9]{2,5}/ nocase
    condition:
        $stratum
}

rule Assay_CryptoMiner_XMRig_Config
{
    meta:
        description = "XMRig miner configuration (donate-level with a pools list)"
        family = "cryptominer"
    strings:
        $donate = /"donate-level"\s*:\s*[0-9]/
        $pools = /"pools"\s*:\s*\[/
        $url = /"url"\s*:\s*"[A-Za-z0-9.\-]{1,253}:[0-9]{2,5}"/
        $algo = /"(algo|coin|rig-id|nicehash|randomx|keepalive)"\s*:/
    condition:
        $donate and $pools and $url and $algo
}

rule Assay_WebShell_PHP
{
    meta:
        description = "PHP executing code or commands taken straight from the request"
        family = "web-shell"
    strings:
        $eval_req = /\b(eval|assert|create_function)\s*\(\s*((base64_decode|gzinflate|gzuncompress|str_rot13|stripslashes|urldecode)\s*\(\s*)*\$_(POST|GET|REQUEST|COOKIE|SERVER\[\s*['"]HTTP_)/ nocase
        $exec_req = /\b(system|shell_exec|passthru|popen|proc_open|pcntl_exec)\s*\(\s*((base64_decode|urldecode|stripslashes)\s*\(\s*)*\$_(POST|GET|REQUEST|COOKIE)\s*\[/ nocase
        $preg_e = /preg_replace\s*\(\s*["']\/[^"']{0,64}\/[a-df-z]*e[a-z]*["']\s*,\s*\$_(POST|GET|REQUEST|COOKIE)/ nocase
    condition:
        any of them
}

rule Assay_WebShell_JSP
{
    meta:
        description = "JSP running an operating system command taken straight from the request"
        family = "web-shell"
    strings:
        $runtime = /Runtime\.getRuntime\(\)\s*\.exec\(\s*request\.getParameter\s*\(/
        $builder = /new\s+ProcessBuilder\s*\(\s*(new\s+String\[\]\s*\{[^}]{0,80})?request\.getParameter\s*\(/
    condition:
        any of them
}
