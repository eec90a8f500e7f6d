// Validates Kubernetes manifests against the published CRD schemas of Istio
// (WasmPlugin) and Envoy Gateway (EnvoyExtensionPolicy), as compiled into the
// npm packages @kubernetes-models/istio and @kubernetes-models/envoy-gateway.
//
//   node crd-validate.mjs SCHEMAS_DIR < docs.json
//
// SCHEMAS_DIR holds node_modules/ with those packages (scripts/install-test-deps
// puts them in target/crd-schemas). stdin: [{"file": "...", "doc": {...}}, ...].
// Besides the schema (types, enums, patterns, required fields), every field
// is probed: a field the schema does not know accepts any value, which is
// how a misspelt field (that Kubernetes would silently prune) shows up.
// Prints one line per document; exits 1 if any is refused.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [schemasDir] = process.argv.slice(2);
const models = {
  "extensions.istio.io/v1alpha1 WasmPlugin": {
    module: "@kubernetes-models/istio/extensions.istio.io/v1alpha1/WasmPlugin.js",
    export: "WasmPlugin",
    freeForm: ["/spec/pluginConfig"],
  },
  "gateway.envoyproxy.io/v1alpha1 EnvoyExtensionPolicy": {
    module: "@kubernetes-models/envoy-gateway/gateway.envoyproxy.io/v1alpha1/EnvoyExtensionPolicy.js",
    export: "EnvoyExtensionPolicy",
    freeForm: [/^\/spec\/wasm\/\d+\/config$/],
  },
};

function errorsOf(Model, doc) {
  try {
    new Model(doc).validate();
    return null;
  } catch (e) {
    return e;
  }
}

function clone(v) {
  return JSON.parse(JSON.stringify(v));
}

function setAt(doc, path, value) {
  let node = doc;
  for (const key of path.slice(0, -1)) node = node[key];
  node[path[path.length - 1]] = value;
}

function isFreeForm(pointer, freeForm) {
  return freeForm.some((f) => (typeof f === "string" ? f === pointer : f.test(pointer)));
}

// Every object key path of doc, not descending into free-form values.
function fieldPaths(value, path, freeForm, out) {
  if (Array.isArray(value)) {
    value.forEach((v, i) => fieldPaths(v, [...path, i], freeForm, out));
  } else if (value && typeof value === "object") {
    for (const key of Object.keys(value)) {
      const p = [...path, key];
      out.push(p);
      if (!isFreeForm("/" + p.join("/"), freeForm)) fieldPaths(value[key], p, freeForm, out);
    }
  }
  return out;
}

const input = JSON.parse(readFileSync(0, "utf8"));
let failed = 0;
for (const { file, doc } of input) {
  const key = `${doc?.apiVersion} ${doc?.kind}`;
  const model = models[key];
  if (!model) {
    console.log(`error ${file}: no schema for ${key}`);
    failed++;
    continue;
  }
  const mod = await import(pathToFileURL(join(schemasDir, "node_modules", model.module)).href);
  const Model = mod[model.export];
  const err = errorsOf(Model, clone(doc));
  if (err) {
    console.log(`error ${file} (${key}): ${err.message}`);
    failed++;
    continue;
  }
  const unknown = [];
  for (const path of fieldPaths(doc, [], model.freeForm, [])) {
    if (path[0] === "apiVersion" || path[0] === "kind") continue;
    const pointer = "/" + path.join("/");
    if (isFreeForm(pointer, model.freeForm)) continue;
    const known = [true, "probe"].some((probe) => {
      const mutated = clone(doc);
      setAt(mutated, path, probe);
      return errorsOf(Model, mutated) !== null;
    });
    if (!known) unknown.push(pointer);
  }
  if (unknown.length) {
    console.log(`error ${file} (${key}): fields the schema does not define: ${unknown.join(", ")}`);
    failed++;
  } else {
    console.log(`ok ${file} (${key})`);
  }
}
process.exit(failed ? 1 : 0);
