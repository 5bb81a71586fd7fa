"""Fill a freshly migrated database with what a small real Wagtail site holds.

Everything goes through Wagtail's own APIs (revisions, publishing, moving,
copying, aliases, workflows), so the rows, the log entries, the reference
index and the search index are the ones Wagtail itself writes.
"""

from datetime import date, timedelta
from io import BytesIO

from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.core.files.base import ContentFile
from django.core.files.images import ImageFile
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone
from PIL import Image as PILImage
from wagtail.contrib.forms.models import FormSubmission
from wagtail.contrib.redirects.models import Redirect
from wagtail.documents.models import Document
from wagtail.embeds.models import Embed
from wagtail.images.models import Image
from wagtail.models import (
    Collection,
    CollectionViewRestriction,
    Comment,
    CommentReply,
    GroupApprovalTask,
    GroupCollectionPermission,
    GroupPagePermission,
    Page,
    PageSubscription,
    PageViewRestriction,
    Site,
    Workflow,
    WorkflowContentType,
    WorkflowPage,
    WorkflowTask,
)
from wagtail.users.models import UserProfile

from home.models import (
    ArticleLink,
    ArticlePage,
    Author,
    Category,
    FormField,
    FormPage,
    HomePage,
    SectionPage,
    SocialSettings,
)


def png(color: tuple[int, int, int], name: str) -> ImageFile:
    buffer = BytesIO()
    PILImage.new("RGB", (48, 32), color).save(buffer, "PNG")
    return ImageFile(BytesIO(buffer.getvalue()), name=name)


def publish(obj: object, user: User) -> None:
    """Save a revision and publish it, as an editor's "Publish" does; the
    seeding users need no publish permission for it."""
    revision = obj.save_revision(user=user, log_action=True)  # type: ignore[attr-defined]
    revision.publish(user=user, skip_permission_checks=True)


def body(*paragraphs: str, link: Page | None = None) -> list[tuple[str, object]]:
    blocks: list[tuple[str, object]] = [("heading", paragraphs[0])]
    blocks += [("paragraph", f"<p>{p}</p>") for p in paragraphs[1:]]
    if link is not None:
        blocks.append(("link", link))
    return blocks


class Command(BaseCommand):
    help = "Create the Wagtail lab's content (pages, revisions, media, permissions, workflows)."

    @transaction.atomic
    def handle(self, *args, **options):
        now = timezone.now()

        # People.
        admin = User.objects.create_superuser("admin", "admin@example.com", "admin")
        editors = [
            User.objects.create_user(f"editor{i}", f"editor{i}@example.com", "pw", first_name=name)
            for i, name in enumerate(["Ada", "Brian", "Chen"], 1)
        ]
        moderator = User.objects.create_user("moderator", "mod@example.com", "pw", is_staff=True)
        reader = User.objects.create_user("reader", "reader@example.com", "pw", is_active=False)
        for user in (admin, *editors, moderator):
            profile = UserProfile.get_for_user(user)
            profile.submitted_notifications = user is not moderator
            profile.save()

        # Collections, nested, with images and documents.
        root_collection = Collection.get_first_root_node()
        media = root_collection.add_child(name="Media")
        photos = media.add_child(name="Photos")
        archive = photos.add_child(name="Archive")
        files = root_collection.add_child(name="Files")
        CollectionViewRestriction.objects.create(collection=archive, restriction_type="login")
        CollectionViewRestriction.objects.create(
            collection=files, restriction_type="groups"
        ).groups.set(Group.objects.filter(name="Editors"))
        images = []
        for i, color in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
            image = Image.objects.create(
                title=f"Photo {i}",
                file=png(color, f"photo{i}.png"),
                collection=archive if i == 2 else photos,
                uploaded_by_user=editors[i % 3],
            )
            image.tags.add("colour", f"tone{i}")
            image.get_rendition("fill-16x16")
            images.append(image)
        documents = [
            Document.objects.create(
                title=f"Report {i}",
                file=ContentFile(f"report {i}\n".encode(), name=f"report{i}.txt"),
                collection=files,
                uploaded_by_user=admin,
            )
            for i in range(2)
        ]
        documents[0].tags.add("annual")

        # Snippets: plain ones, and one with drafts and revisions.
        categories = [Category.objects.create(name=n) for n in ("News", "Travel", "Food", "Tech")]
        authors = []
        for i, name in enumerate(["Grace Hopper", "Alan Kay", "Barbara Liskov"]):
            author = Author(name=name, bio=f"Writes about topic {i}.", photo=images[i], live=False)
            author.save()
            publish(author, admin)
            author.bio += " Updated."
            author.save_revision(user=editors[0], log_action=True)
            authors.append(author)

        # The page tree: Home / sections / articles / an archive section / old articles.
        home = HomePage.objects.get(depth=2, slug="home")
        home.title = "Home"
        publish(home, admin)
        sections = {}
        for title in ("News", "Blog", "About"):
            section = home.add_child(
                instance=SectionPage(title=title, intro=f"<p>All about {title}.</p>")
            )
            publish(section, admin)
            sections[title] = section
        news_archive = sections["News"].add_child(
            instance=SectionPage(title="Archive", slug="news-archive", intro="<p>Old news.</p>")
        )
        publish(news_archive, admin)

        articles = []
        placements = [(sections["Blog"], 6), (sections["News"], 4), (news_archive, 3)]
        for parent, count in placements:
            for i in range(count):
                n = len(articles)
                article = parent.add_child(
                    instance=ArticlePage(
                        title=f"{parent.title} story {i}",
                        slug=f"{parent.slug}-story-{i}",
                        date=date(2025, 1, 1) + timedelta(days=n * 7),
                        author=authors[n % 3],
                        hero=images[n % 3],
                        attachment=documents[n % 2] if n % 4 == 0 else None,
                        body=body(
                            f"Story {n}", "First version.", link=articles[-1] if articles else None
                        ),
                        live=False,
                    )
                )
                article.categories.set(categories[n % 4 : n % 4 + 2])
                article.tags.add(f"tag{n % 5}", "wagtail")
                ArticleLink.objects.create(
                    page=article, title="Source", url=f"https://example.com/{n}"
                )
                user = editors[n % 3]
                publish(article, user)
                for version in range(n % 4):
                    article.title = f"{parent.title} story {i} (v{version + 2})"
                    article.body = body(f"Story {n}", f"Version {version + 2}.")
                    publish(article, user)
                articles.append(article)

        # A draft never published, a page with unpublished changes, a locked page,
        # a scheduled page, an alias, a copy, a moved page and a deleted page.
        draft = sections["Blog"].add_child(
            instance=ArticlePage(title="Unfinished", date=date(2026, 1, 1), live=False)
        )
        draft.save_revision(user=editors[0], log_action=True)
        changed = articles[1]
        changed.title = "Blog story 1 (draft edit)"
        changed.save_revision(user=editors[1], log_action=True)
        locked = articles[2]
        locked.locked, locked.locked_by, locked.locked_at = True, editors[2], now
        locked.save()
        scheduled = sections["News"].add_child(
            instance=ArticlePage(title="Coming soon", date=date(2026, 6, 1), live=False)
        )
        scheduled.go_live_at = now + timedelta(days=30)
        publish(scheduled, admin)
        articles[0].create_alias(parent=sections["About"], update_slug="blog-story-alias")
        team = sections["About"].add_child(instance=SectionPage(title="Team", slug="team"))
        publish(team, admin)
        team.intro = "<p>Who we are.</p>"
        publish(team, admin)
        team.copy(
            to=sections["News"],
            update_attrs={"title": "Team (copy)", "slug": "team-copy"},
            user=admin,
        )
        articles[4].move(sections["About"], pos="last-child", user=admin)
        doomed = sections["About"].add_child(
            instance=SectionPage(title="Short-lived", slug="short-lived")
        )
        publish(doomed, admin)
        doomed.delete()
        PageViewRestriction.objects.create(
            page=sections["About"], restriction_type="password", password="letmein"
        )
        PageViewRestriction.objects.create(page=news_archive, restriction_type="groups").groups.set(
            [Group.objects.get(name="Editors"), Group.objects.get(name="Moderators")]
        )

        # A form with submissions.
        contact = home.add_child(
            instance=FormPage(
                title="Contact",
                intro="<p>Write to us.</p>",
                to_address="site@example.com",
                from_address="noreply@example.com",
                subject="Contact form",
            )
        )
        for sort_order, (label, field_type) in enumerate(
            [("Name", "singleline"), ("Email", "email"), ("Message", "multiline")]
        ):
            FormField.objects.create(
                page=contact, sort_order=sort_order, label=label, field_type=field_type
            )
        publish(contact, admin)
        for i in range(5):
            FormSubmission.objects.create(
                page=contact,
                form_data={"name": f"Visitor {i}", "email": f"v{i}@example.com", "message": "Hi"},
            )

        # Sites, site settings, redirects, an embed.
        site = Site.objects.get(is_default_site=True)
        site.site_name = "Wagtail lab"
        site.save()
        blog_site = Site.objects.create(
            hostname="blog.localhost", port=80, root_page=sections["Blog"], site_name="Blog"
        )
        for s, handle in ((site, "lab"), (blog_site, "labblog")):
            settings = SocialSettings.for_site(s)
            settings.mastodon = f"https://mastodon.example/@{handle}"
            settings.contact_email = f"{handle}@example.com"
            settings.save()
        Redirect.objects.create(old_path="/old-blog", redirect_page=sections["Blog"], site=site)
        Redirect.objects.create(old_path="/feed", redirect_link="https://example.com/feed")
        Redirect.objects.create(
            old_path="/story", redirect_page=articles[0], site=blog_site, is_permanent=False
        )
        Embed.objects.create(
            url="https://video.example/42",
            max_width=640,
            hash="a" * 32,
            type="video",
            html="<iframe></iframe>",
            title="A video",
            width=640,
            height=360,
            last_updated=now,
        )

        # Groups with page, collection and model permissions.
        blog_editors = Group.objects.create(name="Blog editors")
        photo_editors = Group.objects.create(name="Photo editors")
        page_perms = Permission.objects.filter(content_type__app_label="wagtailcore")
        for codename in ("add_page", "change_page", "publish_page", "lock_page"):
            GroupPagePermission.objects.create(
                group=blog_editors,
                page=sections["Blog"],
                permission=page_perms.get(codename=codename),
            )
        GroupPagePermission.objects.create(
            group=photo_editors,
            page=sections["About"],
            permission=page_perms.get(codename="change_page"),
        )
        for codename in ("add_image", "change_image", "choose_image"):
            GroupCollectionPermission.objects.create(
                group=photo_editors,
                collection=photos,
                permission=Permission.objects.get(codename=codename),
            )
        GroupCollectionPermission.objects.create(
            group=blog_editors,
            collection=files,
            permission=Permission.objects.get(codename="add_document"),
        )
        access_admin = Permission.objects.get(codename="access_admin")
        blog_editors.permissions.add(access_admin, Permission.objects.get(codename="change_author"))
        photo_editors.permissions.add(access_admin)
        for i, editor in enumerate(editors):
            editor.groups.add(blog_editors if i < 2 else photo_editors)
        editors[0].groups.add(Group.objects.get(name="Editors"))
        moderator.groups.add(Group.objects.get(name="Moderators"), blog_editors)
        moderator.user_permissions.add(Permission.objects.get(codename="view_formsubmission"))
        reader.user_permissions.add(access_admin)

        # A workflow of its own on the blog, one run approved, one in progress.
        review = Workflow.objects.create(name="Blog review")
        task = GroupApprovalTask.objects.create(name="Blog editors approve")
        task.groups.set([blog_editors])
        WorkflowTask.objects.create(workflow=review, task=task, sort_order=0)
        WorkflowPage.objects.create(workflow=review, page=sections["Blog"])
        WorkflowContentType.objects.create(
            workflow=review, content_type=ContentType.objects.get_for_model(Author)
        )
        for article, finish in ((articles[5], True), (articles[1], False)):
            article.save_revision(user=editors[1], log_action=True)
            state = review.start(article, editors[1])
            if finish:
                state.current_task_state.approve(user=moderator)

        # Comments, replies and subscriptions.
        commented = articles[0]
        comment = Comment.objects.create(
            page=commented,
            user=editors[0],
            text="Is the date right?",
            contentpath="date",
            revision_created=commented.latest_revision,
        )
        CommentReply.objects.create(comment=comment, user=admin, text="Yes.")
        comment.resolved_at, comment.resolved_by = now, admin
        comment.save()
        PageSubscription.objects.create(user=editors[0], page=commented, comment_notifications=True)

        # An entry in Django's admin log: a generic reference to a content type.
        LogEntry.objects.create(
            user=admin,
            content_type=ContentType.objects.get_for_model(Category),
            object_id=str(categories[0].pk),
            object_repr=str(categories[0]),
            action_flag=ADDITION,
            change_message="[]",
        )
        self.stdout.write(f"Seeded {Page.objects.count()} pages.")
