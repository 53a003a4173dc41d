/**
 * Where the upstream binaries and artefacts built by `scripts/build-binaries.sh` and
 * `scripts/fetch-crds.sh` live: a cache outside the repo, keyed by the versions pinned in
 * `scripts/versions.env`.
 */
import { accessSync, constants, existsSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "./state.js";

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export interface Versions {
  kube: string;
  etcd: string;
  mcsApi: string;
  helm: string;
}

export function readVersions(): Versions {
  const text = readFileSync(path.join(REPO_ROOT, "scripts", "versions.env"), "utf8");
  const vars = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(\S+)$/.exec(line.trim());
    if (m) vars.set(m[1]!, m[2]!);
  }
  const get = (k: string): string => {
    const v = vars.get(k);
    if (!v) throw new Error(`scripts/versions.env does not set ${k}`);
    return v;
  };
  return {
    kube: get("KUBE_VERSION"),
    etcd: get("ETCD_VERSION"),
    mcsApi: get("MCS_API_VERSION"),
    helm: get("HELM_VERSION"),
  };
}

export function cacheDir(): string {
  return (
    process.env["MERIDIAN_CACHE"] ??
    path.join(process.env["XDG_CACHE_HOME"] ?? path.join(os.homedir(), ".cache"), "meridian")
  );
}

export interface Binaries {
  dir: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubectl: string;
  etcd: string;
}

export function binariesDir(v: Versions = readVersions()): string {
  return path.join(cacheDir(), "bin", `kube-${v.kube}-etcd-${v.etcd}`);
}

/** The binaries, or an error that says how to build them. */
export function requireBinaries(): Binaries {
  const dir = binariesDir();
  const bins: Binaries = {
    dir,
    kubeApiserver: path.join(dir, "kube-apiserver"),
    kubeControllerManager: path.join(dir, "kube-controller-manager"),
    kubectl: path.join(dir, "kubectl"),
    etcd: path.join(dir, "etcd"),
  };
  const missing = [bins.kubeApiserver, bins.kubeControllerManager, bins.kubectl, bins.etcd].filter((file) => {
    try {
      accessSync(file, constants.X_OK);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    throw new UserError(
      `missing binaries: ${missing.map((m) => path.basename(m)).join(", ")} (looked in ${dir}).\n` +
        `Build them once with 'scripts/build-binaries.sh' (or run 'scripts/setup.sh', which does everything); ` +
        `they are cached outside the repo.`,
    );
  }
  return bins;
}

/** Where `scripts/build-binaries.sh helm` puts helm (its own folder: helm's version moves alone). */
export function helmDir(v: Versions = readVersions()): string {
  return path.join(cacheDir(), "bin", `helm-${v.helm}`);
}

/** The pinned helm, which renders, lints and installs deploy/helm/meridian; or how to build it. */
export function requireHelm(): string {
  const helm = path.join(helmDir(), "helm");
  try {
    accessSync(helm, constants.X_OK);
  } catch {
    throw new UserError(
      `missing helm (looked in ${path.dirname(helm)}).\n` +
        `Build it once with 'scripts/build-binaries.sh helm' (or run 'scripts/setup.sh', which does everything); ` +
        `it is cached outside the repo.`,
    );
  }
  return helm;
}

/** The upstream MCS CRDs, taken from the sigs.k8s.io/mcs-api Go module by scripts/fetch-crds.sh. */
export function upstreamCrdFiles(v: Versions = readVersions()): string[] {
  const dir = path.join(cacheDir(), "crds", `mcs-api-${v.mcsApi}`);
  const files = [
    "multicluster.x-k8s.io_serviceexports.yaml",
    "multicluster.x-k8s.io_serviceimports.yaml",
  ].map((f) => path.join(dir, f));
  const missing = files.filter((f) => !existsSync(f));
  if (missing.length > 0) {
    throw new UserError(`missing the upstream MCS CRDs in ${dir}; fetch them with 'scripts/fetch-crds.sh'`);
  }
  return files;
}

/** Meridian's own CRDs (and the ClusterProperty CRD, written from KEP-2149; see docs/adr). */
export function meridianCrdDir(): string {
  return path.join(REPO_ROOT, "deploy", "crds");
}
