//! Table tests. Expected outputs were produced by Go's text/template (Go
//! 1.19) with docker's function map over the same data (JSON numbers typed
//! int/float64, string lists as []string), except where a note says
//! otherwise. `{{json}}` of maps keeps the data's key order (docker's typed
//! structs print in declaration order; Go's maps would sort).

use super::*;
use serde_json::json;
const CONTAINER: &str = r#"{"Id": "4f66ad9a0b2e1d2c3b4a59687766554433221100ffeeddccbbaa998877665544", "Name": "/web", "Created": "2024-01-02T03:04:05.123456789Z", "Path": "nginx", "Args": ["-g", "daemon off;"], "State": {"Status": "running", "Running": true, "Paused": false, "Pid": 4242, "ExitCode": 0, "StartedAt": "2024-01-02T03:04:06Z", "Health": null}, "Image": "sha256:a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6", "RestartCount": 0, "Config": {"Hostname": "4f66ad9a0b2e", "User": "", "Env": ["PATH=/usr/bin", "NGINX_VERSION=1.25.3"], "Cmd": ["nginx", "-g", "daemon off;"], "Image": "nginx:latest", "Labels": {"com.docker.compose.project": "demo", "com.example.x": "1", "maintainer": "NGINX <docker-maint@nginx.com>"}, "Entrypoint": null, "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT"}, "HostConfig": {"Memory": 0, "NanoCpus": 1500000000, "CpuShares": 0, "RestartPolicy": {"MaximumRetryCount": 0, "Name": "no"}, "Binds": null, "ShmSize": 67108864, "CpuPercent": 12.5}, "Mounts": [{"Destination": "/usr/share/nginx/html", "RW": false, "Source": "/srv/www", "Type": "bind"}, {"Destination": "/data", "Name": "data", "RW": true, "Source": "/var/lib/burrow/volumes/data/_data", "Type": "volume"}], "NetworkSettings": {"IPAddress": "10.88.0.5", "Networks": {"bridge": {"Gateway": "10.88.0.1", "IPAddress": "10.88.0.5", "MacAddress": "02:42:0a:58:00:05"}}, "Ports": {"443/tcp": null, "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}}}"#;
const PS: &str = r#"{"Command": "\"nginx -g 'daemon off;'\"", "CreatedAt": "2024-01-02 03:04:05 +0000 UTC", "ID": "4f66ad9a0b2e", "Image": "nginx:latest", "Labels": "com.example.x=1,maintainer=me", "Mounts": "data", "Names": "web", "Networks": "bridge", "Ports": "0.0.0.0:8080->80/tcp", "RunningFor": "2 hours ago", "Size": "0B", "State": "running", "Status": "Up 2 hours"}"#;
const IMG: &str = r#"{"Repository": "nginx", "Tag": "latest", "ID": "a8758716bb6a", "CreatedSince": "3 weeks ago", "Size": "187MB", "Digest": "<none>"}"#;
const MISC: &str = r#"{"A": true, "B": false, "N": 0, "F": 2.5, "Big": 100000000, "BigF": 123456789.5, "S": "", "Str": "Hello World", "List": [], "Map": {}, "Nums": [3, 1, 2], "Mixed": [1, "a", null, true, 2.5], "Nil": null, "Nested": {"Inner": {"Deep": "x"}}, "Words": "foo bar_baz-qux", "Uni": "héllo wörld", "Neg": -7, "Tab": "a\tb", "Quote": "say \"hi\"\n"}"#;

fn fixture(name: &str) -> Value {
    let text = match name {
        "container" => CONTAINER,
        "ps" => PS,
        "img" => IMG,
        "misc" => MISC,
        _ => unreachable!(),
    };
    serde_json::from_str(text).unwrap()
}

/// (fixture, template, missingkey=error, expected output or error)
#[rustfmt::skip]
const CASES: &[(&str, &str, bool, Result<&str, &str>)] = &[
    ("container", "{{.Id}}", false, Ok("4f66ad9a0b2e1d2c3b4a59687766554433221100ffeeddccbbaa998877665544")),
    ("container", "{{.Name}}", false, Ok("/web")),
    ("container", "{{.State.Pid}}", false, Ok("4242")),
    ("container", "{{.State.Pid}} {{.State.Status}}", false, Ok("4242 running")),
    ("container", "{{.State.Running}}", false, Ok("true")),
    ("container", "{{json .Config}}", false, Ok("{\"Hostname\":\"4f66ad9a0b2e\",\"User\":\"\",\"Env\":[\"PATH=/usr/bin\",\"NGINX_VERSION=1.25.3\"],\"Cmd\":[\"nginx\",\"-g\",\"daemon off;\"],\"Image\":\"nginx:latest\",\"Labels\":{\"com.docker.compose.project\":\"demo\",\"com.example.x\":\"1\",\"maintainer\":\"NGINX <docker-maint@nginx.com>\"},\"Entrypoint\":null,\"ExposedPorts\":{\"80/tcp\":{}},\"StopSignal\":\"SIGQUIT\"}")),
    ("container", "{{json .State}}", false, Ok("{\"Status\":\"running\",\"Running\":true,\"Paused\":false,\"Pid\":4242,\"ExitCode\":0,\"StartedAt\":\"2024-01-02T03:04:06Z\",\"Health\":null}")),
    ("container", "{{json .Mounts}}", false, Ok("[{\"Destination\":\"/usr/share/nginx/html\",\"RW\":false,\"Source\":\"/srv/www\",\"Type\":\"bind\"},{\"Destination\":\"/data\",\"Name\":\"data\",\"RW\":true,\"Source\":\"/var/lib/burrow/volumes/data/_data\",\"Type\":\"volume\"}]")),
    ("container", "{{json .NetworkSettings.Ports}}", false, Ok("{\"443/tcp\":null,\"80/tcp\":[{\"HostIp\":\"0.0.0.0\",\"HostPort\":\"8080\"}]}")),
    ("container", "{{json .Config.Labels}}", false, Ok("{\"com.docker.compose.project\":\"demo\",\"com.example.x\":\"1\",\"maintainer\":\"NGINX <docker-maint@nginx.com>\"}")),
    ("container", "{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}", false, Ok("/srv/www:/usr/share/nginx/html /var/lib/burrow/volumes/data/_data:/data ")),
    ("container", "{{index .Config.Labels \"com.example.x\"}}", false, Ok("1")),
    ("container", "{{index .Config.Labels \"nope\"}}", false, Ok("<no value>")),
    ("container", "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", false, Ok("com.docker.compose.project=demo;com.example.x=1;maintainer=NGINX <docker-maint@nginx.com>;")),
    ("container", "{{if .State.Running}}up{{else}}down{{end}}", false, Ok("up")),
    ("container", "{{if .State.Paused}}paused{{else if .State.Running}}running{{else}}stopped{{end}}", false, Ok("running")),
    ("container", "{{printf \"%-10s|\" .Name}}", false, Ok("/web      |")),
    ("container", "{{printf \"%10s|\" .Name}}", false, Ok("      /web|")),
    ("container", "{{join .Config.Cmd \" \"}}", false, Ok("nginx -g daemon off;")),
    ("container", "{{join .Args \",\"}}", false, Ok("-g,daemon off;")),
    ("container", "{{.NetworkSettings.IPAddress}}", false, Ok("10.88.0.5")),
    ("container", "{{range .NetworkSettings.Ports}}{{.}}{{end}}", false, Ok("<no value>[map[HostIp:0.0.0.0 HostPort:8080]]")),
    ("container", "{{(index .NetworkSettings.Ports \"80/tcp\")}}", false, Ok("[map[HostIp:0.0.0.0 HostPort:8080]]")),
    ("container", "{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}", false, Ok("8080")),
    ("container", "{{range $p, $conf := .NetworkSettings.Ports}}{{$p}} -> {{(index $conf 0).HostPort}}{{\"\\n\"}}{{end}}", false, Err("template: :1:58: executing \"\" at <index $conf 0>: error calling index: index of untyped nil")),
    ("container", "{{range $p, $conf := .NetworkSettings.Ports}}{{$p}}={{if $conf}}{{(index $conf 0).HostPort}}{{else}}none{{end}} {{end}}", false, Ok("443/tcp=none 80/tcp=8080 ")),
    ("container", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", false, Ok("10.88.0.5")),
    ("container", "{{range $name, $n := .NetworkSettings.Networks}}{{$name}}:{{$n.Gateway}}{{end}}", false, Ok("bridge:10.88.0.1")),
    ("container", "{{.NetworkSettings.Networks.bridge.MacAddress}}", false, Ok("02:42:0a:58:00:05")),
    ("container", "{{upper .Name}}", false, Ok("/WEB")),
    ("container", "{{len .Mounts}}", false, Ok("2")),
    ("container", "{{len .Name}}", false, Ok("4")),
    ("container", "{{len .Config.Labels}}", false, Ok("3")),
    ("container", "{{with .State}}{{.Status}}{{end}}", false, Ok("running")),
    ("container", "{{with .State.Health}}{{.Status}}{{else}}no healthcheck{{end}}", false, Ok("no healthcheck")),
    ("container", "{{truncate .Id 12}}", false, Ok("4f66ad9a0b2e")),
    ("container", "{{slice .Id 0 12}}", false, Ok("4f66ad9a0b2e")),
    ("container", "{{if eq .State.Status \"running\"}}yes{{end}}", false, Ok("yes")),
    ("container", "{{if ne .State.ExitCode 0}}failed{{else}}ok{{end}}", false, Ok("ok")),
    ("container", "{{if gt .State.Pid 0}}alive{{end}}", false, Ok("alive")),
    ("container", "{{.State}}", false, Ok("map[ExitCode:0 Health:<nil> Paused:false Pid:4242 Running:true StartedAt:2024-01-02T03:04:06Z Status:running]")),
    ("container", "{{.Config.Labels}}", false, Ok("map[com.docker.compose.project:demo com.example.x:1 maintainer:NGINX <docker-maint@nginx.com>]")),
    ("container", "{{.Mounts}}", false, Ok("[map[Destination:/usr/share/nginx/html RW:false Source:/srv/www Type:bind] map[Destination:/data Name:data RW:true Source:/var/lib/burrow/volumes/data/_data Type:volume]]")),
    ("container", "{{.Config.Env}}", false, Ok("[PATH=/usr/bin NGINX_VERSION=1.25.3]")),
    ("container", "{{.Config.Entrypoint}}", false, Ok("<no value>")),
    ("container", "{{.State.Health}}", false, Ok("<no value>")),
    ("container", "{{.HostConfig.NanoCpus}}", false, Ok("1500000000")),
    ("container", "{{.HostConfig.ShmSize}}", false, Ok("67108864")),
    ("container", "{{.HostConfig.CpuPercent}}", false, Ok("12.5")),
    ("container", "{{.HostConfig.RestartPolicy.Name}}", false, Ok("no")),
    ("container", "{{.Missing}}", false, Ok("<no value>")),
    ("container", "{{.Missing.Deeper}}", false, Ok("<no value>")),
    ("container", "{{.Config.Missing}}", false, Ok("<no value>")),
    ("container", "{{range .Config.Env}}{{println .}}{{end}}", false, Ok("PATH=/usr/bin\nNGINX_VERSION=1.25.3\n")),
    ("container", "{{range $i, $e := .Config.Env}}{{if $i}},{{end}}{{$e}}{{end}}", false, Ok("PATH=/usr/bin,NGINX_VERSION=1.25.3")),
    ("container", "{{range $i, $m := .Mounts}}{{$i}}:{{$m.Type}} {{end}}", false, Ok("0:bind 1:volume ")),
    ("container", "{{range .Mounts}}{{if eq .Type \"volume\"}}{{.Name}}{{end}}{{end}}", false, Ok("data")),
    ("container", "{{- range .Mounts}}\n{{- .Destination}}\n{{- end}}", false, Ok("/usr/share/nginx/html/data")),
    ("container", "{{- range .Mounts -}}\n  {{ .Type }}\n{{- end -}}", false, Ok("bindvolume")),
    ("container", "{{$.Name}}{{range .Mounts}}[{{$.Name}}:{{.Type}}]{{end}}", false, Ok("/web[/web:bind][/web:volume]")),
    ("container", "{{$n := .Name}}{{range .Mounts}}{{$n}}{{end}}", false, Ok("/web/web")),
    ("container", "{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", false, Ok("2")),
    ("container", "{{range .Config.Cmd}}{{if eq . \"-g\"}}{{break}}{{end}}{{.}}{{end}}", false, Ok("nginx")),
    ("container", "{{range .Config.Cmd}}{{if eq . \"-g\"}}{{continue}}{{end}}{{.}},{{end}}", false, Ok("nginx,daemon off;,")),
    ("container", "{{range .Config.Entrypoint}}x{{else}}empty{{end}}", false, Ok("empty")),
    ("container", "{{range .Nope}}x{{else}}none{{end}}", false, Ok("none")),
    ("container", "{{json .Config.Entrypoint}}", false, Ok("null")),
    ("container", "{{json .Nope}}", false, Ok("null")),
    ("container", "{{json .}}", false, Ok("{\"Id\":\"4f66ad9a0b2e1d2c3b4a59687766554433221100ffeeddccbbaa998877665544\",\"Name\":\"/web\",\"Created\":\"2024-01-02T03:04:05.123456789Z\",\"Path\":\"nginx\",\"Args\":[\"-g\",\"daemon off;\"],\"State\":{\"Status\":\"running\",\"Running\":true,\"Paused\":false,\"Pid\":4242,\"ExitCode\":0,\"StartedAt\":\"2024-01-02T03:04:06Z\",\"Health\":null},\"Image\":\"sha256:a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6\",\"RestartCount\":0,\"Config\":{\"Hostname\":\"4f66ad9a0b2e\",\"User\":\"\",\"Env\":[\"PATH=/usr/bin\",\"NGINX_VERSION=1.25.3\"],\"Cmd\":[\"nginx\",\"-g\",\"daemon off;\"],\"Image\":\"nginx:latest\",\"Labels\":{\"com.docker.compose.project\":\"demo\",\"com.example.x\":\"1\",\"maintainer\":\"NGINX <docker-maint@nginx.com>\"},\"Entrypoint\":null,\"ExposedPorts\":{\"80/tcp\":{}},\"StopSignal\":\"SIGQUIT\"},\"HostConfig\":{\"Memory\":0,\"NanoCpus\":1500000000,\"CpuShares\":0,\"RestartPolicy\":{\"MaximumRetryCount\":0,\"Name\":\"no\"},\"Binds\":null,\"ShmSize\":67108864,\"CpuPercent\":12.5},\"Mounts\":[{\"Destination\":\"/usr/share/nginx/html\",\"RW\":false,\"Source\":\"/srv/www\",\"Type\":\"bind\"},{\"Destination\":\"/data\",\"Name\":\"data\",\"RW\":true,\"Source\":\"/var/lib/burrow/volumes/data/_data\",\"Type\":\"volume\"}],\"NetworkSettings\":{\"IPAddress\":\"10.88.0.5\",\"Networks\":{\"bridge\":{\"Gateway\":\"10.88.0.1\",\"IPAddress\":\"10.88.0.5\",\"MacAddress\":\"02:42:0a:58:00:05\"}},\"Ports\":{\"443/tcp\":null,\"80/tcp\":[{\"HostIp\":\"0.0.0.0\",\"HostPort\":\"8080\"}]}}}")),
    ("container", "{{.State.Pid | printf \"%d\"}}", false, Ok("4242")),
    ("container", "{{.Name | printf \"%q\"}}", false, Ok("\"/web\"")),
    ("container", "{{.Name | len}}", false, Ok("4")),
    ("container", "{{index .Config.Cmd 1}}", false, Ok("-g")),
    ("container", "{{index .Config.Cmd 5}}", false, Err("template: :1:2: executing \"\" at <index .Config.Cmd 5>: error calling index: index out of range: 5")),
    ("container", "{{index .Mounts 1 \"Name\"}}", false, Ok("data")),
    ("container", "{{index .Name 1}}", false, Ok("119")),
    ("container", "{{slice .Config.Cmd 1}}", false, Ok("[-g daemon off;]")),
    ("container", "{{slice .Config.Cmd 1 2}}", false, Ok("[-g]")),
    ("container", "{{slice .Name 1 3}}", false, Ok("we")),
    ("container", "{{/* comment */}}x", false, Ok("x")),
    ("container", "{{- /* trimmed comment */ -}}   x", false, Ok("x")),
    ("container", "a  {{- .Name -}}  b", false, Ok("a/webb")),
    ("container", "{{.Name}}\n{{.Path}}", false, Ok("/web\nnginx")),
    ("container", "{{(.State).Status}}", false, Ok("running")),
    ("container", "{{ .State.Status | upper | printf \"[%s]\" }}", false, Ok("[RUNNING]")),
    ("container", "{{.Config.Labels.maintainer}}", false, Ok("NGINX <docker-maint@nginx.com>")),
    ("container", "{{.Name.Foo}}", false, Err("template: :1:7: executing \"\" at <.Name.Foo>: can't evaluate field Foo in type interface {}")),
    ("container", "{{.State.Health.Status}}", false, Err("template: :1:8: executing \"\" at <.State.Health.Status>: nil pointer evaluating interface {}.Status")),
    ("container", "{{.Mounts.Foo}}", false, Err("template: :1:9: executing \"\" at <.Mounts.Foo>: can't evaluate field Foo in type interface {}")),
    ("container", "{{.Name 1}}", false, Err("template: :1:2: executing \"\" at <.Name>: Name is not a method but has arguments")),
    ("container", "{{index 1 2}}", false, Err("template: :1:2: executing \"\" at <index 1 2>: error calling index: can't index item of type int")),
    ("container", "{{len 3}}", false, Err("template: :1:2: executing \"\" at <len 3>: error calling len: len of type int")),
    ("container", "{{nil}}", false, Err("template: :1:2: executing \"\" at <nil>: nil is not a command")),
    // burrow: a field holding a map can be called with one argument (docker's `.Label "k"`); Go: "State is not a method but has arguments"
    ("container", "{{.Name | .State}}", false, Ok("")),
    ("container", "{{printf}}", false, Err("template: :1:2: executing \"\" at <printf>: wrong number of args for printf: want at least 1 got 0")),
    ("container", "{{upper 3}}", false, Err("template: :1:8: executing \"\" at <3>: expected string; found 3")),
    ("container", "{{index .Config.Labels 1}}", false, Err("template: :1:2: executing \"\" at <index .Config.Labels 1>: error calling index: value has type int; should be string")),
    ("container", "{{lt .Name 3}}", false, Err("template: :1:2: executing \"\" at <lt .Name 3>: error calling lt: incompatible types for comparison")),
    ("container", "{{eq .Config .Config}}", false, Err("template: :1:2: executing \"\" at <eq .Config .Config>: error calling eq: non-comparable type map[Cmd:[nginx -g daemon off;] Entrypoint:<nil> Env:[PATH=/usr/bin NGINX_VERSION=1.25.3] ExposedPorts:map[80/tcp:map[]] Hostname:4f66ad9a0b2e Image:nginx:latest Labels:map[com.docker.compose.project:demo com.example.x:1 maintainer:NGINX <docker-maint@nginx.com>] StopSignal:SIGQUIT User:]: map[string]interface {}")),
    ("container", "{{lt true false}}", false, Err("template: :1:2: executing \"\" at <lt true false>: error calling lt: invalid type for comparison")),
    ("container", "{{range .Name}}{{.}}{{end}}", false, Err("template: :1:8: executing \"\" at <.Name>: range can't iterate over /web")),
    ("container", "{{truncate .Name \"x\"}}", false, Err("template: :1:17: executing \"\" at <\"x\">: expected integer; found \"x\"")),
    ("container", "{{.Missing}}", true, Err("template: :1:2: executing \"\" at <.Missing>: map has no entry for key \"Missing\"")),
    ("container", "{{.Config.Missing}}", true, Err("template: :1:9: executing \"\" at <.Config.Missing>: map has no entry for key \"Missing\"")),
    ("container", "{{.Missing.Deeper}}", true, Err("template: :1:10: executing \"\" at <.Missing.Deeper>: map has no entry for key \"Missing\"")),
    ("container", "line1\n{{.Name}} {{.State.Nope}}", true, Err("template: :2:18: executing \"\" at <.State.Nope>: map has no entry for key \"Nope\"")),
    ("ps", "{{.ID}}", false, Ok("4f66ad9a0b2e")),
    ("ps", "{{.Names}} {{.Status}}", false, Ok("web Up 2 hours")),
    ("ps", "{{.ID}}\t{{.Image}}\t{{.Status}}", false, Ok("4f66ad9a0b2e\tnginx:latest\tUp 2 hours")),
    ("ps", "{{json .}}", false, Ok("{\"Command\":\"\\\"nginx -g 'daemon off;'\\\"\",\"CreatedAt\":\"2024-01-02 03:04:05 +0000 UTC\",\"ID\":\"4f66ad9a0b2e\",\"Image\":\"nginx:latest\",\"Labels\":\"com.example.x=1,maintainer=me\",\"Mounts\":\"data\",\"Names\":\"web\",\"Networks\":\"bridge\",\"Ports\":\"0.0.0.0:8080->80/tcp\",\"RunningFor\":\"2 hours ago\",\"Size\":\"0B\",\"State\":\"running\",\"Status\":\"Up 2 hours\"}")),
    ("ps", "{{.Names}}: {{.Ports}}", false, Ok("web: 0.0.0.0:8080->80/tcp")),
    ("ps", "{{.Command}}", false, Ok("\"nginx -g 'daemon off;'\"")),
    ("ps", "{{.Label \"com.example.x\"}}", false, Err("template: :1:2: executing \"\" at <.Label>: Label is not a method but has arguments")),
    ("ps", "{{lower .Status | printf \"%q\"}}", false, Ok("\"up 2 hours\"")),
    ("ps", "{{.Names | upper}}", false, Ok("WEB")),
    ("ps", "{{pad .Names 2 3}}|", false, Ok("  web   |")),
    ("ps", "{{pad .Size 1 1}}|", false, Ok(" 0B |")),
    ("ps", "{{split .Labels \",\"}}", false, Ok("[com.example.x=1 maintainer=me]")),
    ("ps", "{{index (split .Labels \",\") 1}}", false, Ok("maintainer=me")),
    ("ps", "{{range split .Labels \",\"}}<{{.}}>{{end}}", false, Ok("<com.example.x=1><maintainer=me>")),
    ("ps", "{{len (split .Labels \",\")}}", false, Ok("2")),
    ("ps", "{{json (split .Ports \"->\")}}", false, Ok("[\"0.0.0.0:8080\",\"80/tcp\"]")),
    ("ps", "{{title .Status}}", false, Ok("Up 2 Hours")),
    ("ps", "{{title .RunningFor}}", false, Ok("2 Hours Ago")),
    ("ps", "{{if and .Names (not .Size)}}x{{else}}y{{end}}", false, Ok("y")),
    ("ps", "{{if and .Names .Size}}both{{end}}", false, Ok("both")),
    ("ps", "{{or .Missing \"default\"}}", false, Ok("default")),
    ("ps", "{{and .Names .Status}}", false, Ok("Up 2 hours")),
    ("ps", "{{or .Names .Status}}", false, Ok("web")),
    ("ps", "{{and .Missing .Names}}", false, Ok("<no value>")),
    ("ps", "{{.Names}}{{if eq .State \"running\" \"paused\"}}*{{end}}", false, Ok("web*")),
    ("img", "{{.Repository}}:{{.Tag}}", false, Ok("nginx:latest")),
    ("img", "{{.ID}} {{.Size}}", false, Ok("a8758716bb6a 187MB")),
    ("img", "{{.Repository}}@{{.Digest}}", false, Ok("nginx@<none>")),
    ("img", "{{json .}}", false, Ok("{\"Repository\":\"nginx\",\"Tag\":\"latest\",\"ID\":\"a8758716bb6a\",\"CreatedSince\":\"3 weeks ago\",\"Size\":\"187MB\",\"Digest\":\"<none>\"}")),
    ("misc", "{{if .A}}a{{end}}{{if .B}}b{{end}}{{if .N}}n{{end}}{{if .S}}s{{end}}{{if .List}}l{{end}}{{if .Map}}m{{end}}{{if .Nil}}nil{{end}}{{if .F}}f{{end}}", false, Ok("af")),
    ("misc", "{{if and .A (not .B)}}ok{{end}}", false, Ok("ok")),
    ("misc", "{{if or .B .N .S}}x{{else}}all false{{end}}", false, Ok("all false")),
    ("misc", "{{and .A .N}}", false, Ok("0")),
    ("misc", "{{or .B .N}}", false, Ok("0")),
    ("misc", "{{not .Map}}", false, Ok("true")),
    ("misc", "{{.F}} {{.Big}} {{.BigF}} {{.Neg}} {{.N}}", false, Ok("2.5 100000000 1.234567895e+08 -7 0")),
    ("misc", "{{.Nums}} {{.Mixed}} {{.List}} {{.Map}} {{.Nested}}", false, Ok("[3 1 2] [1 a <nil> true 2.5] [] map[] map[Inner:map[Deep:x]]")),
    ("misc", "{{json .Mixed}}", false, Ok("[1,\"a\",null,true,2.5]")),
    ("misc", "{{printf \"%.2f\" .F}}", false, Ok("2.50")),
    ("misc", "{{printf \"%5.1f|%-8.3f|%e\" .F .F .F}}", false, Ok("  2.5|2.500   |2.500000e+00")),
    ("misc", "{{printf \"%d\" .Big}}", false, Ok("100000000")),
    ("misc", "{{printf \"%v %v\" .Big .BigF}}", false, Ok("100000000 1.234567895e+08")),
    ("misc", "{{printf \"%x %X %o %b %c\" 255 255 8 5 65}}", false, Ok("ff FF 10 101 A")),
    ("misc", "{{printf \"%05d|%+d|% d\" .Neg .N 3}}", false, Ok("-0007|+0| 3")),
    ("misc", "{{printf \"%t\" .A}}", false, Ok("true")),
    ("misc", "{{printf \"%q\" .Quote}}", false, Ok("\"say \\\"hi\\\"\\n\"")),
    ("misc", "{{printf \"%s\" .Nums}}", false, Ok("[%!s(int=3) %!s(int=1) %!s(int=2)]")),
    ("misc", "{{printf \"%d\" .Nums}}", false, Ok("[3 1 2]")),
    ("misc", "{{printf \"%v\" .Nil}}", false, Ok("<nil>")),
    ("misc", "{{printf \"%s\" .Nil}}", false, Ok("%!s(<nil>)")),
    ("misc", "{{printf \"%s\" .Missing}}", false, Ok("%!s(<nil>)")),
    ("misc", "{{printf \"%d\" .Str}}", false, Ok("%!d(string=Hello World)")),
    ("misc", "{{printf \"%s %s\" .Str}}", false, Ok("Hello World %!s(MISSING)")),
    ("misc", "{{printf \"%s\" .Str .Str}}", false, Ok("Hello World%!(EXTRA string=Hello World)")),
    ("misc", "{{printf \"%6.2f%%\" .F}}", false, Ok("  2.50%")),
    ("misc", "{{printf \"%x\" .Str}}", false, Ok("48656c6c6f20576f726c64")),
    ("misc", "{{printf \"%.3s\" .Str}}", false, Ok("Hel")),
    ("misc", "{{printf \"%T %T %T %T\" .Str .N .F .A}}", false, Ok("string int float64 bool")),
    ("misc", "{{print .N .F}} {{print .Str .N}} {{print .N .Str .N}}", false, Ok("0 2.5 Hello World0 0Hello World0")),
    ("misc", "{{println .Str .N}}", false, Ok("Hello World 0\n")),
    ("misc", "{{print}}", false, Ok("")),
    ("misc", "{{print .Nil}}", false, Ok("<nil>")),
    ("misc", "{{title .Words}}", false, Ok("Foo Bar_baz-Qux")),
    ("misc", "{{upper .Uni}}", false, Ok("HÉLLO WÖRLD")),
    ("misc", "{{title .Uni}}", false, Ok("Héllo Wörld")),
    ("misc", "{{lower .Str}}", false, Ok("hello world")),
    ("misc", "{{len .Uni}}", false, Ok("13")),
    ("misc", "{{truncate .Str 5}}", false, Ok("Hello")),
    ("misc", "{{truncate .Str 50}}", false, Ok("Hello World")),
    ("misc", "{{split .Str \" \"}}", false, Ok("[Hello World]")),
    ("misc", "{{split .Str \"\"}}", false, Ok("[H e l l o   W o r l d]")),
    ("misc", "{{split .S \",\"}}", false, Ok("[]")),
    ("misc", "{{len (split .S \",\")}}", false, Ok("1")),
    ("misc", "{{join (split .Str \" \") \"-\"}}", false, Ok("Hello-World")),
    ("misc", "{{eq .N 0}} {{eq .Str \"Hello World\"}} {{ne .A .B}} {{eq .Nil .Missing}} {{eq .Missing \"x\"}}", false, Ok("true true true true false")),
    ("misc", "{{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge 1 2}} {{lt .Neg .N}}", false, Ok("true true true false true")),
    ("misc", "{{eq 1 2 3 1}}", false, Ok("true")),
    ("misc", "{{eq .F 2.5}}", false, Ok("true")),
    ("misc", "{{range $i := .Nums}}{{$i}}{{end}}", false, Ok("312")),
    ("misc", "{{range $i, $n := .Nums}}{{$i}}={{$n}} {{end}}", false, Ok("0=3 1=1 2=2 ")),
    ("misc", "{{range .Mixed}}[{{.}}]{{end}}", false, Ok("[1][a][<no value>][true][2.5]")),
    ("misc", "{{range .Map}}x{{else}}empty map{{end}}", false, Ok("empty map")),
    ("misc", "{{range .List}}x{{else}}empty list{{end}}", false, Ok("empty list")),
    ("misc", "{{range .Nil}}x{{else}}nil{{end}}", false, Ok("nil")),
    ("misc", "{{with .Nested.Inner}}{{.Deep}}{{end}}", false, Ok("x")),
    ("misc", "{{with .Nested.Nope}}x{{else}}nope{{end}}", false, Ok("nope")),
    ("misc", "{{with $x := .Str}}{{$x}}{{end}}", false, Ok("Hello World")),
    // `else with` is Go 1.23+
    ("misc", "{{with .S}}x{{else with .Str}}{{.}}{{end}}", false, Ok("Hello World")),
    ("misc", "{{.Nested.Inner.Deep}}", false, Ok("x")),
    ("misc", "{{$}}", false, Ok("map[A:true B:false Big:100000000 BigF:1.234567895e+08 F:2.5 List:[] Map:map[] Mixed:[1 a <nil> true 2.5] N:0 Neg:-7 Nested:map[Inner:map[Deep:x]] Nil:<nil> Nums:[3 1 2] Quote:say \"hi\"\n S: Str:Hello World Tab:a\tb Uni:héllo wörld Words:foo bar_baz-qux]")),
    ("misc", "{{.Nil}}", false, Ok("<no value>")),
    ("misc", "{{index .Mixed 2}}", false, Ok("<no value>")),
    ("misc", "{{index .Nested \"Inner\" \"Deep\"}}", false, Ok("x")),
    ("misc", "{{3}} {{-4}} {{1.5}} {{1e3}} {{0x1F}} {{'a'}} {{true}} {{\"s\"}} {{`raw\\n`}} {{1.0}} {{1e6}} {{0.00001}}", false, Ok("3 -4 1.5 1000 31 97 true s raw\\n 1 1e+06 1e-05")),
    ("misc", "{{\"a\\tb\\u00e9\\x41\"}}", false, Ok("a\tbéA")),
    ("misc", "{{print 'x' \"y\"}}", false, Ok("120y")),
    ("misc", "{{printf \"%c\" 'x'}}", false, Ok("x")),
    ("misc", "{{html \"<a href='x'>&\"}}", false, Ok("&lt;a href=&#39;x&#39;&gt;&amp;")),
    ("misc", "{{urlquery \"a b&c\"}}", false, Ok("a+b%26c")),
    ("misc", "{{js \"it's <b>\"}}", false, Ok("it\\'s \\u003Cb\\u003E")),
    ("misc", "{{(printf \"%s-%s\" \"a\" \"b\") | upper}}", false, Ok("A-B")),
    ("misc", "{{$a := \"x\"}}{{$b := \"y\"}}{{$a}}{{$b}}", false, Ok("xy")),
    ("misc", "{{ $x := .Nums }}{{ len $x }}", false, Ok("3")),
    ("misc", "{{.Str | printf \"%s!\" | printf \"<%s>\"}}", false, Ok("<Hello World!>")),
    ("misc", "{{if .A}}{{if .B}}b{{else}}nb{{end}}{{end}}", false, Ok("nb")),
    ("misc", "{{range $i, $e := .Nums}}{{if eq $i 1}}{{continue}}{{end}}{{$e}}{{end}}", false, Ok("32")),
    ("misc", "{{range .Nums}}{{range $.Nums}}{{.}}{{end}}|{{end}}", false, Ok("312|312|312|")),
    ("misc", "{{slice .Nums}} {{slice .Nums 1 1}} {{slice .Str 6}}", false, Ok("[3 1 2] [] World")),
    ("misc", "{{slice .Nums 2 1}}", false, Err("template: :1:2: executing \"\" at <slice .Nums 2 1>: error calling slice: invalid slice index: 2 > 1")),
    ("misc", "{{slice .Nums 0 9}}", false, Err("template: :1:2: executing \"\" at <slice .Nums 0 9>: error calling slice: index out of range: 9")),
    ("misc", "{{index .Nil 1}}", false, Err("template: :1:2: executing \"\" at <index .Nil 1>: error calling index: index of untyped nil")),
    ("misc", "{{index .Missing 1}}", false, Err("template: :1:2: executing \"\" at <index .Missing 1>: error calling index: index of untyped nil")),
    ("misc", "{{.Str.Foo}}", false, Err("template: :1:6: executing \"\" at <.Str.Foo>: can't evaluate field Foo in type interface {}")),
    ("misc", "{{.Nil.Foo}}", false, Err("template: :1:6: executing \"\" at <.Nil.Foo>: nil pointer evaluating interface {}.Foo")),
    ("misc", "{{.Missing.Foo.Bar}}", false, Ok("<no value>")),
    ("misc", "{{len .Nil}}", false, Err("template: :1:2: executing \"\" at <len .Nil>: error calling len: len of nil pointer")),
    ("misc", "{{len .N}}", false, Err("template: :1:2: executing \"\" at <len .N>: error calling len: len of type int")),
    ("misc", "{{not}}", false, Err("template: :1:2: executing \"\" at <not>: wrong number of args for not: want 1 got 0")),
    ("misc", "{{eq .N}}", false, Err("template: :1:2: executing \"\" at <eq .N>: error calling eq: missing argument for comparison")),
    ("misc", "{{.Tab}}", false, Ok("a\tb")),
    ("misc", "{{json .Quote}}", false, Ok("\"say \\\"hi\\\"\\n\"")),
    ("misc", "{{json .Uni}}", false, Ok("\"héllo wörld\"")),
    ("misc", "{{json .F}}", false, Ok("2.5")),
    ("misc", "{{json .Big}}", false, Ok("100000000")),
    ("misc", "{{json .Nested}}", false, Ok("{\"Inner\":{\"Deep\":\"x\"}}")),
    ("misc", "{{if}}x{{end}}", false, Err("template: :1: missing value for if")),
    ("misc", "{{range}}{{end}}", false, Err("template: :1: missing value for range")),
    ("misc", "{{end}}", false, Err("template: :1: unexpected {{end}}")),
    ("misc", "{{else}}", false, Err("template: :1: unexpected {{else}}")),
    ("misc", "{{if .A}}x", false, Err("template: :1: unexpected EOF")),
    ("misc", "{{.A", false, Err("template: :1: unclosed action")),
    ("misc", "{{foo}}", false, Err("template: :1: function \"foo\" not defined")),
    ("misc", "{{$x}}", false, Err("template: :1: undefined variable \"$x\"")),
    ("misc", "{{.A}}}}", false, Ok("true}}")),
    ("misc", "{{\"unterminated}}", false, Err("template: :1: unterminated quoted string")),
    ("misc", "{{.A | }}", false, Ok("true")),
    ("misc", "{{(.A}}", false, Err("template: :1: unclosed left paren")),
    ("misc", "{{.A)}}", false, Err("template: :1: unexpected \")\" in command")),
    ("misc", "{{break}}", false, Err("template: :1: {{break}} outside {{range}}")),
    ("misc", "{{if .A}}{{else}}{{else}}{{end}}", false, Err("template: :1: expected end; found {{else}}")),
    ("misc", "{{/* unclosed }}", false, Err("template: :1: unclosed comment")),
    ("misc", "{{/* x */ .A}}", false, Err("template: :1: comment ends before closing delimiter")),
    ("misc", "{{.A .B}}", false, Err("template: :1:2: executing \"\" at <.A>: A is not a method but has arguments")),
    ("misc", "{{1 | .A}}", false, Err("template: :1:6: executing \"\" at <.A>: A is not a method but has arguments")),
    ("misc", "{{.A | 1}}", false, Err("template: :1: non executable command in pipeline stage 2")),
    ("misc", "{{3x}}", false, Err("template: :1: bad number syntax: \"3x\"")),
    ("misc", "{{.A#}}", false, Err("template: :1: bad character U+0023 '#'")),
    ("misc", "{{range $i, $v, $w := .Nums}}{{end}}", false, Err("template: :1: too many declarations in range")),
    ("misc", "{{$x := 1}}{{$x 2}}", false, Err("template: :1:13: executing \"\" at <$x>: can't give argument to non-function $x")),
    ("misc", "{{\"a\".B}}", false, Err("template: :1: unexpected . after term \"\\\"a\\\"\"")),
    // named templates are not supported
    ("misc", "{{template \"x\"}}", false, Err("template: :1: {{template}} is not supported (no named templates)")),
    ("misc", "{{.A := 1}}", false, Err("template: :1: unexpected \":=\" in operand")),
    ("misc", "{{$x = 1}}", false, Err("template: :1:7: executing \"\" at <1>: undefined variable: $x")),
    ("misc", "\n\n{{.A}}\n{{if}}", false, Err("template: :4: missing value for if")),
    ("misc", "x\n{{.Nums.Foo}}", false, Err("template: :2:7: executing \"\" at <.Nums.Foo>: can't evaluate field Foo in type interface {}")),
    ("misc", "{{range .Nums}}\n  {{.Foo}}{{end}}", false, Err("template: :2:4: executing \"\" at <.Foo>: can't evaluate field Foo in type interface {}")),
    ("misc", "{{printf \"%s\" (index .Nums 9)}}", false, Err("template: :1:15: executing \"\" at <index .Nums 9>: error calling index: index out of range: 9")),
    ("misc", "{{index .Map 1}}", false, Err("template: :1:2: executing \"\" at <index .Map 1>: error calling index: value has type int; should be string")),
    ("misc", "{{index .Nums \"a\"}}", false, Err("template: :1:2: executing \"\" at <index .Nums \"a\">: error calling index: cannot index slice/array with type string")),
    ("misc", "{{upper .Nums}}", false, Err("template: :1:8: executing \"\" at <.Nums>: wrong type for value; expected string; got []interface {}")),
];

#[test]
fn table_of_docker_templates() {
    let fixtures: Vec<(&str, Value)> = ["container", "ps", "img", "misc"]
        .iter()
        .map(|n| (*n, fixture(n)))
        .collect();
    let mut failures = Vec::new();
    for (fx, tmpl, missing_err, want) in CASES {
        let data = &fixtures.iter().find(|(n, _)| n == fx).unwrap().1;
        let got = Template::parse(tmpl)
            .and_then(|t| t.missing_key_error(*missing_err).execute(data))
            .map_err(|e| e.to_string());
        let ok = match (&got, want) {
            (Ok(g), Ok(w)) => g == w,
            (Err(g), Err(w)) => g == w,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{tmpl:?} on {fx}:\n   got  {got:?}\n   want {want:?}"
            ));
        }
    }
    assert!(CASES.len() >= 250);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn ps_rows() -> Vec<Value> {
    vec![
        json!({"ID": "4f66ad9a0b2e", "Image": "nginx:latest", "Status": "Up 2 hours", "Names": "web",
               "CreatedAt": "2024-01-02 03:04:05 +0000 UTC", "Label": {"tier": "front"}}),
        json!({"ID": "1234567890ab", "Image": "busybox:1.36.1-uclibc", "Status": "Exited (0) 5 seconds ago",
               "Names": "job", "CreatedAt": "2024-01-03 00:00:00 +0000 UTC", "Label": {}}),
    ]
}

fn ps_headers(field: &str) -> Option<String> {
    match field {
        "ID" => Some("CONTAINER ID".into()),
        "Names" => Some("NAMES".into()),
        _ => None,
    }
}

#[test]
fn render_list_table_aligns_with_headers() {
    let out = render_list(
        "table {{.ID}}\\t{{.Image}}\\t{{.Status}}",
        &ps_rows(),
        &ps_headers,
    )
    .unwrap();
    assert_eq!(
        out,
        "CONTAINER ID   IMAGE                   STATUS\n\
         4f66ad9a0b2e   nginx:latest            Up 2 hours\n\
         1234567890ab   busybox:1.36.1-uclibc   Exited (0) 5 seconds ago\n"
    );
    // Real tabs work too, and default headers split CamelCase.
    let out = render_list("table {{.Names}}\t{{.CreatedAt}}", &ps_rows(), &ps_headers).unwrap();
    assert_eq!(
        out,
        "NAMES     CREATED AT\n\
         web       2024-01-02 03:04:05 +0000 UTC\n\
         job       2024-01-03 00:00:00 +0000 UTC\n"
    );
    // docker's functions leave the header text alone; header of `.Label "k"` is LABEL.
    let out = render_list(
        "table {{upper .Names}}\\t{{truncate .ID 4}}\\t{{.Label \"tier\"}}",
        &ps_rows(),
        &ps_headers,
    )
    .unwrap();
    assert_eq!(
        out,
        "NAMES     CONTAINER ID   LABEL\n\
         WEB       4f66           front\n\
         JOB       1234           \n"
    );
    // No items: header only.
    let out = render_list("table {{.ID}}\\t{{.Names}}", &[], &ps_headers).unwrap();
    assert_eq!(out, "CONTAINER ID   NAMES\n");
    // Nested fields ask for the dotted path first, then the last name.
    let hdr = |f: &str| (f == "State.Pid").then(|| "PID".to_string());
    let out = render_list(
        "table {{.State.Pid}}\\t{{.State.Status}}",
        &[json!({"State": {"Pid": 1, "Status": "up"}})],
        &hdr,
    )
    .unwrap();
    assert_eq!(out, "PID       STATUS\n1         up\n");
}

#[test]
fn render_list_json_and_plain() {
    let rows = vec![
        json!({"ID": "a", "Names": "x<y>", "N": 1.5}),
        json!({"ID": "b", "Names": "z", "N": 2}),
    ];
    assert_eq!(
        render_list("json", &rows, &ps_headers).unwrap(),
        "{\"ID\":\"a\",\"Names\":\"x<y>\",\"N\":1.5}\n{\"ID\":\"b\",\"Names\":\"z\",\"N\":2}\n"
    );
    assert_eq!(
        render_list("{{.ID}}: {{.Names}}", &rows, &ps_headers).unwrap(),
        "a: x<y>\nb: z\n"
    );
    // `\t` and `\n` escapes are translated, surrounding spaces trimmed (docker's preFormat).
    assert_eq!(
        render_list("  {{.ID}}\\t{{.Names}}\\n ", &rows, &ps_headers).unwrap(),
        "a\tx<y>\n\nb\tz\n\n"
    );
    assert_eq!(
        render_list("{{json .}}", &rows[1..], &ps_headers).unwrap(),
        "{\"ID\":\"b\",\"Names\":\"z\",\"N\":2}\n"
    );
    assert!(render_list("", &rows, &ps_headers).unwrap() == "\n\n");
}

#[test]
fn render_list_errors() {
    let rows = ps_rows();
    let e = render_list("{{.ID", &rows, &ps_headers).unwrap_err();
    assert_eq!(e.to_string(), "template: :1: unclosed action");
    assert!(matches!(e, TemplateError::Parse { line: 1, .. }));
    let e = render_list("{{.Names.X}}", &rows, &ps_headers).unwrap_err();
    assert_eq!(
        e,
        TemplateError::Exec {
            line: 1,
            // Go positions a field chain at its second field.
            col: 8,
            context: ".Names.X".into(),
            message: "can't evaluate field X in type interface {}".into()
        }
    );
}

#[test]
fn render_does_not_translate_escapes() {
    // docker inspect uses the template as is.
    let d = json!({"A": "x"});
    assert_eq!(render("{{.A}}\\t{{.A}}", &d).unwrap(), "x\\tx");
    assert_eq!(render("{{.A}}\t{{.A}}\n", &d).unwrap(), "x\tx\n");
}

#[test]
fn template_parses_once_executes_many() {
    let t = Template::parse("{{.Name}}={{.State.Pid}}").unwrap();
    assert_eq!(t.source(), "{{.Name}}={{.State.Pid}}");
    for i in 0..3 {
        let d = json!({"Name": format!("c{i}"), "State": {"Pid": i}});
        assert_eq!(t.execute(&d).unwrap(), format!("c{i}={i}"));
    }
}

#[test]
fn missing_key_option() {
    let d = json!({"A": {"B": 1}});
    assert_eq!(
        render("{{.X}} {{.A.X}}", &d).unwrap(),
        "<no value> <no value>"
    );
    let t = Template::parse("{{.A.X}}").unwrap().missing_key_error(true);
    assert_eq!(
        t.execute(&d).unwrap_err().to_string(),
        "template: :1:4: executing \"\" at <.A.X>: map has no entry for key \"X\""
    );
    let t = Template::parse("{{.Foo}}").unwrap().missing_key_error(true);
    assert_eq!(
        t.execute(&d).unwrap_err().to_string(),
        "template: :1:2: executing \"\" at <.Foo>: map has no entry for key \"Foo\""
    );
}

#[test]
fn docker_label_method() {
    let d = json!({"Labels": "a=1,b=2", "Label": {"a": "1", "com.x": "y"}});
    assert_eq!(
        render(
            r#"{{.Label "com.x"}}|{{.Label "nope"}}|{{"a" | .Label}}"#,
            &d
        )
        .unwrap(),
        "y||1"
    );
    assert_eq!(
        render(r#"{{.Labels "a"}}"#, &d).unwrap_err().to_string(),
        "template: :1:2: executing \"\" at <.Labels>: Labels is not a method but has arguments"
    );
}

#[test]
fn lenient_where_typed_docker_data_would_work() {
    let d = json!({"Null": null, "I": 3, "F": 3.0, "G": 2.5, "L": [1, "a"]});
    // String functions take null/missing as "".
    assert_eq!(
        render(
            "[{{upper .Null}}][{{truncate .Missing 3}}][{{join .Null \",\"}}]",
            &d
        )
        .unwrap(),
        "[][][]"
    );
    // Numbers compare across int and float; %f accepts ints.
    assert_eq!(
        render("{{eq .I .F}} {{lt .I .G}} {{printf \"%.1f\" .I}}", &d).unwrap(),
        "true false 3.0"
    );
    // join formats non-string elements.
    assert_eq!(render("{{join .L \"+\"}}", &d).unwrap(), "1+a");
}

#[test]
fn newer_go_features() {
    let d = json!({"N": 3, "S": "", "T": "t"});
    assert_eq!(render("{{range .N}}{{.}}{{end}}", &d).unwrap(), "012");
    assert_eq!(render("{{range $i := 2}}{{$i}}{{end}}", &d).unwrap(), "01");
    assert_eq!(
        render("{{with .S}}s{{else with .T}}{{.}}{{else}}none{{end}}", &d).unwrap(),
        "t"
    );
}

#[test]
fn more_parse_errors() {
    let cases = [
        ("{{if .A}}x{{else}}y", "template: :1: unexpected EOF"),
        ("a\nb\n{{.A", "template: :3: unclosed action"),
        (
            "{{range .}}{{else if .A}}{{end}}{{end}}",
            "template: :1: unexpected <if> in input",
        ),
        (
            "{{continue}}",
            "template: :1: {{continue}} outside {{range}}",
        ),
        ("{{len}}x{{upper 1 2 3}}", ""),
        (
            "{{printf \"%d\" 99999999999999999999}}",
            "template: :1: illegal number syntax: \"99999999999999999999\"",
        ),
        (
            "{{'ab'}}",
            "template: :1: malformed character constant: 'ab'",
        ),
        ("{{\"\\z\"}}", "template: :1: invalid syntax"),
        (
            "{{define \"x\"}}{{end}}",
            "template: :1: {{define}} is not supported (no named templates)",
        ),
    ];
    for (t, want) in cases {
        match Template::parse(t) {
            Ok(_) => assert_eq!(want, "", "{t:?} parsed"),
            Err(e) => assert_eq!(e.to_string(), want, "{t:?}"),
        }
    }
    // Exec-time arity errors, as Go reports them.
    assert_eq!(
        render("{{len}}", &json!({})).unwrap_err().to_string(),
        "template: :1:2: executing \"\" at <len>: wrong number of args for len: want 1 got 0"
    );
    assert_eq!(
        render("{{upper 1 2 3}}", &json!({}))
            .unwrap_err()
            .to_string(),
        "template: :1:2: executing \"\" at <upper>: wrong number of args for upper: want 1 got 3"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    let t = format!("{{{{{deep}}}}}");
    let e = Template::parse(&t).unwrap_err();
    assert_eq!(e.to_string(), "template: :1: template nested too deeply");
    let ifs = format!("{}x{}", "{{if 1}}".repeat(3000), "{{end}}".repeat(3000));
    assert!(Template::parse(&ifs).is_err());
    let ok = format!("{}x{}", "{{if 1}}".repeat(99), "{{end}}".repeat(99));
    assert_eq!(render(&ok, &json!({})).unwrap(), "x");
    let parens = format!("{{{{{}1{}}}}}", "(".repeat(99), ")".repeat(99));
    assert_eq!(render(&parens, &json!({})).unwrap(), "1");
    let printfs = format!(
        "{{{{{}1{}}}}}",
        "(printf \"%v\" ".repeat(99),
        ")".repeat(99)
    );
    assert_eq!(render(&printfs, &json!({})).unwrap(), "1");
}

#[test]
fn error_partial_output_is_not_returned() {
    let e = render("abc{{.A.B.C}}", &json!({"A": {"B": 5}})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "template: :1:7: executing \"\" at <.A.B.C>: can't evaluate field C in type interface {}"
    );
}
