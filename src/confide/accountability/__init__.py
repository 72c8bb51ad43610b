"""The processor's accountability duties (GDPR arts. 28, 30, 33) as working features.

- ``ropa``: the record of processing (art. 30(2)), generated from the data map and configuration.
- ``subprocessors``: the sub-processor register, prior notice and objections (art. 28(2), (4)).
- ``residency``: personal data stays in the EU/UK (policy 4), refused at configuration time.
- ``breaches``: the breach register and art. 33(2)-(3) notices to each affected controller.
- ``policies``: immutable policy versions, announced when published (policy 6).
- ``inbox``: each organisation's portal inbox (policy 6.3, "the private messaging system").
- ``newsletter``: notification/newsletter subscriptions, apart from account data (policy 2.6).

Who receives what is decided in one place, :mod:`confide.accountability.recipients`; every mail
goes out after the change that caused it committed (:mod:`confide.accountability.mail`).
"""
