"""Protocol Buffers + gRPC code generation with Debian's protoc.

pettube_proto_library(name, srcs, deps, grpc) turns the .proto files of one
package into a cc_library named `name`, generated at build time (never
committed). Protos import each other by workspace path, e.g.
`import "proto/io/cloudevents/v1/cloudevents.proto";`, and C++ includes the
generated headers by the same path with .pb.h / .grpc.pb.h.

Each library also exports `<name>_srcs`, the transitive .proto files, because
protoc needs every imported file as an input of the generating action.
"""

_PROTOC = "/usr/bin/protoc"
_GRPC_PLUGIN = "/usr/bin/grpc_cpp_plugin"

def _outputs(stem, grpc):
    outs = [stem + ".pb.h", stem + ".pb.cc"]
    if grpc:
        outs += [stem + ".grpc.pb.h", stem + ".grpc.pb.cc"]
    return outs

def _protoc_cmd(proto_path, out_dir, grpc, inputs):
    cmd = "%s --proto_path=%s --cpp_out=%s" % (_PROTOC, proto_path, out_dir)
    if grpc:
        cmd += " --grpc_out=%s --plugin=protoc-gen-grpc=%s" % (out_dir, _GRPC_PLUGIN)
    return cmd + " " + inputs

def _cc_library(name, outs, deps, grpc, visibility, includes = []):
    cc_deps = [d for d in deps] + ["@system//:protobuf"]
    if grpc:
        cc_deps.append("@system//:grpc")
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = [o for o in outs if o.endswith(".h")],
        includes = includes,
        copts = ["-Wno-unused-parameter"],
        deps = cc_deps,
        visibility = visibility,
    )

def pettube_proto_library(name, srcs, deps = [], grpc = True, visibility = None):
    """C++ (and gRPC) code for the .proto files in this package.

    Args:
      name: the cc_library to create.
      srcs: .proto file names in this package.
      deps: other pettube_proto_library targets whose protos these import.
      grpc: also generate gRPC service stubs.
      visibility: of the cc_library and the _srcs filegroup.
    """
    native.filegroup(
        name = name + "_srcs",
        srcs = srcs + [d + "_srcs" for d in deps],
        visibility = visibility,
    )
    outs = []
    for src in srcs:
        outs += _outputs(src[:-len(".proto")], grpc)
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [d + "_srcs" for d in deps],
        outs = outs,
        cmd = _protoc_cmd(".", "$(GENDIR)", grpc, " ".join(["$(location %s)" % s for s in srcs])),
    )
    _cc_library(name, outs, deps, grpc, visibility)

def system_proto_library(name, proto, import_path, grpc = True, visibility = None):
    """C++ code for one .proto shipped by Debian (e.g. grpc-proto's health.proto).

    Args:
      name: the cc_library to create.
      proto: label of the .proto file in @system.
      import_path: its path below /usr/share/grpc-proto, without ".proto";
        the generated headers are included by this path.
      grpc: also generate gRPC service stubs.
      visibility: of the cc_library.
    """
    outs = _outputs(import_path, grpc)
    native.genrule(
        name = name + "_gen",
        srcs = [proto],
        outs = outs,
        cmd = _protoc_cmd("external/system/share/grpc-proto", "$(RULEDIR)", grpc, "$(location %s)" % proto),
    )
    _cc_library(name, outs, [], grpc, visibility, includes = ["."])
