# -*- encoding: utf-8 -*-
# stub: shop_helpers 0.3.1 ruby lib

Gem::Specification.new do |s|
  s.name = "shop_helpers".freeze
  s.version = "0.3.1"

  s.required_rubygems_version = Gem::Requirement.new(">= 0".freeze) if s.respond_to? :required_rubygems_version=
  s.require_paths = ["lib".freeze]
  s.authors = ["Shop".freeze]
  s.date = "2026-12-02"
  s.licenses = ["MIT".freeze]
  s.rubygems_version = "3.3.15".freeze
  s.summary = "Helpers for the shop widget".freeze

  s.installed_by_version = "3.3.15" if s.respond_to? :installed_by_version

  if s.respond_to? :specification_version then
    s.specification_version = 4
  end

  if s.respond_to? :add_runtime_dependency then
    s.add_runtime_dependency(%q<rake>.freeze, [">= 13"])
  else
    s.add_dependency(%q<rake>.freeze, [">= 13"])
  end
end
